"""Embeds and buttons: every parameter carried, each action parsed by its own DynamicItem,
and ids that none parses answered."""

import pytest
from PIL import Image

from pipeline.params import PARAMS, RenderRequest, decode_payload
from pipeline.results import RenderResult
from placebot.discord_side import client
from placebot.discord_side.views import (
    BUTTONS,
    CancelButton,
    DeleteButton,
    NewCropButton,
    RerollButton,
    cancel_id,
    delete_id,
    is_known_button,
    newcrop_id,
    reroll_id,
    result_embed,
)
from tests.support.bot_harness import custom_ids, embed_fields, wait_result

FORGED = [
    "place:reroll:../../etc/passwd",
    "place:reroll:m1.4:c2017:x3:y4:s0.5:t4:r98",  # 98 recursions
    "place:reroll:1.4:2017:3:4:0.5:4:x",  # the old format, malformed
    "place:delete:not-a-user",
    "place:explode:1",
    "someone-elses-button",
]


def _result(prompt=None) -> RenderResult:
    job = RenderRequest(model="1.5", canvas="2022", x=7, y=9, seed=11, strength=0.3, steps=10,
                        recursions=2, prompt=prompt).resolve()
    frame = Image.new("RGB", (512, 512))
    return RenderResult(job=job, tiles=Image.new("RGB", (32, 32)), frames=[frame, frame],
                        pass_seconds=[1.0], model_id="local/model")


def test_embed_has_a_field_for_every_parameter():
    """Each shown parameter of a canvas crop's: its label and value, plus the model id and
    time (the artwork is named by the atlas's own line, not as a field)."""
    result = _result("a fox")
    fields = {f.name: f.value for f in result_embed(result, "x.png").fields}
    assert {spec.label: fields[spec.label] for spec in PARAMS.values()
            if spec.scope != "picture" and spec.shown} == {
        "Model": "1.5", "Canvas": "2022", "x": "7", "y": "9", "Seed": "11", "Strength": "0.3",
        "Steps": "10", "Recursions": "2", "Prompt": "a fox", "Guidance": "7.5"}
    assert fields["Model id"] == "local/model"


def test_a_prompt_is_shown_as_plain_text():
    """Markdown and mentions in a prompt are escaped: they neither format nor ping."""
    fields = {f.name: f.value for f in result_embed(_result("**big** @everyone"), "x.png").fields}
    assert fields["Prompt"] == "\\*\\*big\\*\\* @\u200beveryone"


def test_a_cut_prompt_is_announced_with_what_counted():
    """Where CLIP read only part of the prompt, the embed says which part."""
    result = _result("a fox " * 50)
    result.prompt_used = "a fox a fox"
    fields = {f.name: f.value for f in result_embed(result, "x.png").fields}
    assert fields["Prompt cut"] == "CLIP reads 77 tokens; the prompt was cut to: a fox a fox"
    assert "Prompt cut" not in {f.name for f in result_embed(_result(), "x.png").fields}


async def test_reroll_button_asks_for_the_same_job_with_a_new_seed():
    """Re-roll's custom_id decodes to the job's parameters, its seed left open (guidance is
    the owner's setting, not carried: the live default applies)."""
    job = _result().job
    request = decode_payload((await _parsed(RerollButton, reroll_id(job))).payload)
    live_guidance = PARAMS["guidance"].parse("guidance", RenderRequest().guidance)
    assert request == RenderRequest(**{**job.values(), "seed": None, "guidance": live_guidance})


async def test_newcrop_button_asks_for_the_same_parameters_on_a_new_crop():
    """New crop's custom_id keeps model, strength, steps and recursions only."""
    job = _result().job
    request = decode_payload((await _parsed(NewCropButton, newcrop_id(job))).payload)
    assert request == RenderRequest(model="1.5", strength=0.3, steps=10, recursions=2)
    assert len(reroll_id(job)) <= 100  # Discord's limit for a custom_id


async def _parsed(button, custom_id):
    match = button.__discord_ui_compiled_template__.fullmatch(custom_id)
    assert match is not None, custom_id
    return await button.from_custom_id(None, None, match)


@pytest.mark.parametrize(("make_id", "button"), [
    (lambda job: reroll_id(job), RerollButton),
    (lambda job: newcrop_id(job), NewCropButton),
    (lambda job: delete_id(42), DeleteButton),
    (lambda job: cancel_id("0123456789ab", 42), CancelButton),
])
def test_each_action_is_parsed_by_its_own_button_class(make_id, button):
    """Exactly one registered DynamicItem's template matches each kind of id."""
    custom_id = make_id(_result().job)
    matching = [b for b in BUTTONS if b.__discord_ui_compiled_template__.fullmatch(custom_id)]
    assert matching == [button]


async def test_delete_and_cancel_ids_give_back_owner_and_job():
    """Delete carries its owner; Cancel its job id and owner."""
    delete = await _parsed(DeleteButton, delete_id(42))
    cancel = await _parsed(CancelButton, cancel_id("0123456789ab", 43))
    assert delete.owner_id == 42
    assert (cancel.job_id, cancel.owner_id) == ("0123456789ab", 43)


def test_custom_ids_carry_no_path_or_free_text():
    """Only tagged digits and dots parse: no user text can reach a file name."""
    assert is_known_button("place:reroll:m1.5:c2022:x10:y20:s0.8:t50:r3")
    assert not is_known_button("place:reroll:m1.5:c../..:x10:y20:s0.8:t50:r3")


@pytest.mark.parametrize("custom_id", FORGED)
async def test_forged_or_stale_custom_ids_get_an_ephemeral_answer(fake, start_bot, custom_id):
    """An id no button parses, or whose values are out of bounds, is refused ephemerally."""
    async with start_bot() as bot:
        result = await wait_result(fake, fake.slash("place"))
        click = fake.click_forged(result.id, custom_id, user_id=77)
        await fake.wait_for(lambda: click.callbacks)
        assert len(bot.jobs.queue) == 0
    callback = click.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert ("no longer valid" in callback["data"]["content"]
            or "recursions must be 0-5" in callback["data"]["content"])


async def test_cancel_of_a_finished_job_says_so(fake, start_bot):
    """Cancel on a job that already ended gets an ephemeral 'no longer waiting or running'."""
    async with start_bot():
        interaction = fake.slash("place", user_id=4)
        result = await wait_result(fake, interaction)
        stale = fake.click_forged(result.id, cancel_id("0123456789ab", 4), user_id=4)
        await fake.wait_for(lambda: stale.callbacks)
    assert "no longer waiting or running" in stale.callbacks[0]["data"]["content"]


async def test_a_click_works_when_the_cogs_failed_to_load(fake, start_bot, tmp_path,
                                                          monkeypatch):
    """Buttons need no cog: with every extension failing to load, Re-roll still renders."""
    data = tmp_path / "data"
    async with start_bot(data_dir=data):
        first = await wait_result(fake, fake.slash("place", {"canvas": "2017", "x": 3, "y": 4}))
    monkeypatch.setattr(client, "EXTENSIONS", ("cogs.no_such_cog",))
    async with start_bot(data_dir=data) as bot:
        assert not bot.cogs  # nothing loaded
        reroll = next(i for i in custom_ids(first) if i.startswith("place:reroll"))
        again = await wait_result(fake, fake.click(first.id, reroll, user_id=50))
    assert (embed_fields(again)["x"], embed_fields(again)["y"]) == ("3", "4")


async def test_delete_clicked_twice_quickly_is_not_an_error(fake, start_bot):
    """Both clicks arrive before the first deletes: the message goes, and the second click
    gets nothing alarming."""
    async with start_bot():
        result = await wait_result(fake, fake.slash("place", user_id=47))
        delete = next(c["custom_id"] for row in result.components for c in row["components"]
                      if c["custom_id"].startswith("place:delete"))
        clicks = [fake.click(result.id, delete, user_id=47) for _ in range(2)]
        said = await fake.wait_for(lambda: result.deleted and [
            t for c in clicks for t in c.ephemeral_texts if "already deleted" in t])
    assert said == ["This picture was already deleted."]
    assert not any("Sorry" in t for c in clicks for t in c.ephemeral_texts)


def _named(artworks):
    from dataclasses import replace

    return replace(_result(), artworks=artworks)


def test_the_embed_names_the_artworks_with_their_page_and_subreddit():
    """One line each: the name linked to its atlas page, its first subreddit, its share."""
    from pipeline.atlas import Overlap
    from tests.pipeline.atlas.test_index import artwork

    poster = replace_subreddits(artwork([[0, 0], [9, 0], [9, 9]], "Star Wars", "000012"),
                                ("starwars_place", "StarWars"))
    odd = artwork([[0, 0], [9, 0], [9, 9]], "*bold* [x](y) @everyone", "7")
    embed = result_embed(_named([Overlap(poster, 0.6406), Overlap(odd, 0.25)]), "x.png",
                         "locator.jpg")
    fields = {f.name: f.value for f in embed.fields}
    first, second = fields["On r/Place"].splitlines()
    assert first == ("[Star Wars](https://2022.place-atlas.stefanocoding.me/#000012) · "
                     "r/starwars\\_place · 64% of the crop")
    assert second.startswith("[\\*bold\\* \\[x\\](y) @\u200beveryone](https://")
    assert embed.thumbnail.url == "attachment://locator.jpg"


def test_a_crop_with_nothing_charted_says_so_and_no_lookup_adds_nothing():
    """Looked up and empty: one line saying so; not looked up (no atlas): no field at all."""
    looked_up = {f.name: f.value for f in result_embed(_named([]), "x.png").fields}
    assert looked_up["On r/Place"].startswith("No charted artwork here")
    embed = result_embed(_named(None), "x.png")
    assert "On r/Place" not in {f.name for f in embed.fields} and embed.thumbnail.url is None


def replace_subreddits(art, subreddits):
    from dataclasses import replace

    return replace(art, subreddits=subreddits)


def test_buttons_of_an_artwork_job_carry_it_within_discords_limit():
    """Re-roll keeps the crop and the artwork; New crop the artwork only. Even with the
    longest values of every other parameter the custom_id holds 100 characters."""
    job = RenderRequest(canvas="2022", artwork="2022-abcdefgh", x=1968, y=1968, seed=1,
                        strength=0.12345678901234568, steps=150, recursions=5,
                        prompt="a castle").resolve()
    assert decode_payload(_groups(RerollButton, reroll_id(job))).artwork == "2022-abcdefgh"
    recrop = decode_payload(_groups(NewCropButton, newcrop_id(job)))
    assert (recrop.artwork, recrop.x, recrop.canvas) == ("2022-abcdefgh", None, None)
    assert len(reroll_id(job)) <= 100 and len(newcrop_id(job)) <= 100


def _groups(button, custom_id):
    return button.__discord_ui_compiled_template__.fullmatch(custom_id).groupdict()
