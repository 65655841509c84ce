"""Every fixed sentence a user reads when the bot refuses or cannot do something, in one place
to read and reword. The code that refuses names the sentence; a sentence with a blank in it is
a str.format template, filled in there with the names in braces.

Most are the message of an error whose text is written for the user (placebot/messages.py
turns errors into what the user reads); the rest are answers sent as they are. The messages of
an invalid render parameter are built from the parameter where it is checked
(pipeline/params.py); the pipeline's own errors say their own words (pipeline/errors.py).
Imports nothing: any module may use it.
"""

# ----- the queue (placebot/jobs/jobqueue.py, the distributed mode's backend and store)
QUEUE_FULL = "the queue is full ({limit} jobs waiting); try again in a minute"
USER_LIMIT_REACHED = ("you already have {limit} {jobs} waiting (the limit per person); "
                      "wait for it to finish or cancel it")  # jobs: "job" or "jobs"
COOLDOWN_ACTIVE = "you can start another dream in {seconds_left:.0f} s (cooldown)"
QUEUE_CLOSED = "the bot is restarting: nothing was taken, try again in a minute"
QUEUE_UNAVAILABLE = "the render queue can't be reached right now; try again in a minute"
# the local journal could not write the job down (a full or broken data folder)
JOB_NOT_KEPT = ("the bot could not write your job down (its owner can see why in the log); "
                "nothing was queued, try again in a minute")
RESERVATION_EXPIRED = ("your place in the queue ran out while your dream was prepared (it "
                       "is held {held_s:.0f} s); try again")

# ----- a job that failed (placebot/messages.py, the worker, the render watchdog)
GENERIC = "something went wrong on our side (the bot owner can see the details in the log)"
MODEL_NOT_LOADED = ("model {model_key} could not be loaded (the bot owner can see why in the "
                    "log); the next dream will try again")
OUT_OF_MEMORY = "the GPU ran out of memory, even in a lower VRAM mode; try again later"
CANCELLED = "cancelled"
JOB_TIMEOUT = "the job took longer than the {seconds:g} s limit and was stopped"
ENGINE_STUCK = ("{doing} stopped responding (no answer after {limit_s:g} s); the bot is "
                "restarting its image engine and goes on with the other jobs")
SORRY = "Sorry: {message}."  # an unexpected error in a command or a button

# ----- a result's stored picture or prompt (placebot/discord_side/source_store.py,
# placebot/distributed/sources.py)
PICTURE_EXPIRED = ("the picture of this result has expired (pictures are kept {days:g} days "
                   "after their last use); use /dream with it again")
PROMPT_EXPIRED = ("the prompt of this result has expired (prompts are kept {days:g} days after "
                  "their last use); run the command again with it")
SOURCES_UNAVAILABLE = ("the store of pictures and prompts can't be reached right now; try "
                       "again in a minute")

# ----- a user's picture (placebot/discord_side/attachments.py, placebot/discord_side/pictures.py,
# cogs/dream.py)
NO_PICTURE = ("That message has no image to dream on: it needs an image attachment or an "
              "embedded image.")
FILE_TOO_LARGE_DECLARED = ("{filename} is {size_mb:.1f} MB; this bot takes images up to "
                           "{max_mb:g} MB")
FILE_NOT_AN_IMAGE = "{filename} is not an image ({kind})"
FILE_NOT_ON_DISCORD = ("{filename} is not on Discord's media servers, the only place this bot "
                       "fetches pictures from")
FILE_NOT_FETCHED = "{filename} could not be fetched from Discord; try again"
FILE_NOT_FETCHED_HTTP = "{filename} could not be fetched from Discord (HTTP {status}); try again"
FILE_TOO_MANY_REDIRECTS = ("{filename} could not be fetched from Discord (more than {redirects} "
                           "redirects); try again")
FILE_TOO_LARGE = "{filename} is larger than {max_mb:g} MB, the most this bot takes"
DECODERS_BUSY = "the bot is busy decoding other pictures; try again in a minute"
DECODE_TOO_SLOW = ("the image took more than {timeout_s:g} s to decode; try a smaller or "
                   "simpler one")
IMAGE_TOO_LARGE_TO_DECODE = "the image is too large to decode; try a smaller one"
IMAGE_DAMAGED = "the image file is truncated or damaged"
NO_SUCH_SQUARE = "this picture has squares 0-{last}, not {offset}"

# ----- a result's files (placebot/discord_side/result_files.py)
OVER_UPLOAD_LIMIT = "even a small JPEG exceeds this server's upload limit of {size_limit} bytes"

# ----- a result's buttons (placebot/discord_side/views.py)
NO_LONGER_VALID = "This button is no longer valid."
ALREADY_DELETED = "This picture was already deleted."
ONLY_OWNER_DELETES = ("Only the person who asked for this picture, or someone who can manage "
                      "messages, can delete it.")
ONLY_OWNER_CANCELS = "Only the person who asked for this job can cancel it."
CANCEL_NOT_FOUND = "This job is no longer waiting or running."
CANCEL_REMOVED = "Your job was cancelled."
CANCEL_STOPPING = "Cancelling your job…"

# ----- a server's own settings (placebot/servers/server_settings.py,
# placebot/servers/server_rules.py,
# cogs/admin.py, placebot/discord_side/service.py)
PROMPTS_OFF = ("{who} turned prompts off, and this would dream with a prompt; /place and "
               "/dream still dream without one")
PROMPTS_OFF_BY_SERVER = "this server's admins have"
PROMPTS_OFF_BY_OWNER = "the owner of this bot has"
WRONG_CHANNEL = "in this server the bot can be used only in {listed}"
SERVER_SETTINGS_DAMAGED = ("this server's bot settings can't be read (its {name!r} setting is "
                           "damaged), so the bot takes no jobs here: an admin can clear them "
                           "with /place_admin reset")
SERVER_SETTINGS_UNAVAILABLE = ("this server's bot settings can't be reached right now; try "
                               "again in a minute")
NOT_AN_ADMIN = "Only members who can manage this server can change the bot's settings here."
ONLY_IN_A_SERVER = "The bot's settings belong to a server: use /place_admin in one."
TOO_MANY_CHANNELS = "a server can list at most {most} channels"
CHANNEL_IS_A_CATEGORY = "{channel} is a category: list its channels instead"
COOLDOWN_OUT_OF_BOUNDS = ("the cooldown can be {least} to {most} here: the bot's owner sets "
                          "{least} for every server, and a server may make it longer, not "
                          "shorter")
USER_LIMIT_OUT_OF_BOUNDS = ("the limit can be 1 to {most} job(s) per person here: the bot's "
                            "owner allows {most} in every server, and a server may allow "
                            "fewer, not more")
PROMPTS_OFF_EVERYWHERE = ("the bot's owner has turned prompts off in every server, so they "
                          "can't be turned on here")
UNKNOWN_MODEL = "the model {model!r} is unknown; choose one of {models}"
SAFETY_CHECKER_OFF = ("the bot's owner has turned the safety checker off "
                      "(PLACE_SAFETY_CHECKER=false), so it can't run here; ask them")
# a job whose bot stopped between taking its place and queueing it (killed while it deferred)
NOT_QUEUED = ("the bot restarted before your dream was queued, so nothing was started; "
              "try again")
# a job that ended its process again and again (a crash, a wedged render): reported, dropped
DROPPED_LOCAL = "the bot stopped {n} times while rendering it, so it was dropped"
DROPPED_BY_WORKERS = "it stopped a render worker {n} times in a row and was dropped"
