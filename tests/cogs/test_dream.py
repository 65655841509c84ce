"""/dream and "Dream on this" through the real bot and discord.py, over the fake Discord,
which serves the users' files on 127.0.0.1 as Discord's CDN does."""

import io
import os
import time

import pytest
from PIL import Image, PngImagePlugin

from pipeline.canvases import upscale
from pipeline.errors import ModelLoadError
from pipeline.image_source import centre_offset, decode, pixelate, square
from tests.support import big_pictures
from tests.support.bot_harness import custom_ids, embed_fields, wait_result
from tests.support.fast_renderer import FastRenderer

EPHEMERAL = 64


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _photo(size=(96, 64)) -> Image.Image:
    return Image.effect_noise(size, 60).convert("RGB")


def _first_frame(message) -> Image.Image:
    """The strip's first 512x512 frame: what the job dreamed on."""
    data = next(d for n, d in message.attachments if n.endswith("_strip.png"))
    return Image.open(io.BytesIO(data)).convert("RGB").crop((0, 0, 512, 512))


def _expected_input(data: bytes, pixel: int = 32) -> Image.Image:
    source = pixelate(decode(data), pixel)
    return upscale(square(source, centre_offset(source)))


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 40), colour) for colour in ("red", "blue", "green")]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def _transparent_png() -> bytes:
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (0, 0, 20, 40))
    return _encoded(image, "PNG")


async def test_dream_on_a_png_dreams_on_its_pixelated_centre_square(fake, start_bot):
    """Real diffusers on the tiny model: the strip starts with the picture's 32-tile centre
    square, upscaled NEAREST, and the embed says it is a picture."""
    data = _encoded(_photo(), "PNG")
    async with start_bot():
        interaction = fake.slash("dream", {"image": fake.user_attachment("me.png", data)})
        result = await wait_result(fake, interaction)
    assert interaction.callbacks[0]["type"] == 5
    assert result.embeds[0]["title"].startswith("A picture, 32 tiles high")
    assert "Canvas" not in embed_fields(result) and embed_fields(result)["Pixel"] == "32"
    assert _first_frame(result).tobytes() == _expected_input(data).tobytes()


@pytest.mark.parametrize("kind", ["jpeg", "animated gif", "transparent png"])
async def test_dream_takes_jpeg_animated_gif_and_transparent_png(fake, start_bot, kind):
    """Each is dreamed on: a JPEG as it is, a GIF's first frame, transparency on white."""
    data, name = {
        "jpeg": (_encoded(_photo(), "JPEG"), "p.jpg"),
        "animated gif": (_animated_gif(), "a.gif"),
        "transparent png": (_transparent_png(), "t.png"),
    }[kind]
    async with start_bot(renderer=FastRenderer()):
        interaction = fake.slash("dream", {"image": fake.user_attachment(name, data)})
        result = await wait_result(fake, interaction)
    first = _first_frame(result)
    assert first.tobytes() == _expected_input(data).tobytes()
    if kind == "animated gif":
        assert first.getpixel((256, 256)) == (255, 0, 0)  # the first frame is red
    if kind == "transparent png":
        assert first.getpixel((500, 256)) == (255, 255, 255)  # composited on white


def _too_many_megapixels() -> bytes:
    return _encoded(Image.new("1", (6000, 5000)), "PNG")  # 30 MP in a few KB


def _huge_text_chunk() -> bytes:
    """A PNG whose compressed comment unpacks past what Pillow reads (a few KB of file)."""
    comment = PngImagePlugin.PngInfo()
    comment.add_text("comment", "x" * 20_000_000, zip=True)
    return _encoded(_photo(), "PNG", pnginfo=comment)


def _cut(data: bytes, keep: float) -> bytes:
    return data[:int(len(data) * keep)]


REFUSED = {
    "not an image": ("notes.png", b"hello, this is text", "not an image this bot reads"),
    "truncated": ("cut.png", _encoded(_photo((300, 300)), "PNG")[:3000], "truncated"),
    "too many megapixels": ("huge.png", _too_many_megapixels(), "at most 25 are allowed"),
    "truncated webp": ("cut.webp", _cut(_encoded(_photo((300, 300)), "WEBP"), 0.5),
                       "truncated or damaged"),
    "truncated jpeg": ("cut.jpg", _cut(_encoded(_photo((300, 300)), "JPEG"), 0.3),
                       "truncated or damaged"),
    "png with a huge text chunk": ("said.png", _huge_text_chunk(), "truncated or damaged"),
    "a 1x25,000,000 strip": ("strip.png", big_pictures.strip_png(),
                             "too large to decode within this bot's memory bounds"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_an_unusable_file_gets_one_clear_ephemeral_line(fake, start_bot, case):
    """The thinking message goes away; one ephemeral line says what was wrong; no job (a
    truncated WebP or a PNG with a huge text chunk got the public "something went wrong on
    our side")."""
    name, data, expected = REFUSED[case]
    async with start_bot(renderer=FastRenderer()) as bot:
        interaction = fake.slash("dream", {"image": fake.user_attachment(name, data)})
        await fake.wait_for(lambda: interaction.ephemeral_texts)
        assert len(bot.jobs.queue) + len(bot.jobs.queue.running) == 0
    [line] = interaction.ephemeral_texts
    assert expected in line
    assert interaction.original is None or interaction.original.deleted


async def test_a_declared_size_over_the_limit_is_refused_before_any_fetch(fake, start_bot):
    """A file that says it is 9 MB is refused at once, ephemerally, and never fetched."""
    attached = fake.user_attachment("big.png", _encoded(_photo(), "PNG"), size=9 * 1024 * 1024)
    async with start_bot(renderer=FastRenderer()):
        interaction = fake.slash("dream", {"image": attached})
        await fake.wait_for(lambda: interaction.callbacks)
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
    assert "big.png is 9.0 MB; this bot takes images up to 8 MB" in callback["data"]["content"]
    assert fake.attachment_fetches == []


async def test_dream_on_this_replies_to_the_message_with_its_attachment(fake, start_bot):
    """The message command dreams on the attachment and posts the result in reply to it."""
    data = _encoded(_photo((64, 64)), "PNG")
    posted = fake.post_as_user("look", attachments=[fake.user_attachment("cat.png", data)])
    async with start_bot(renderer=FastRenderer()):
        interaction = fake.message_command("Dream on this", posted.id, user_id=4000)
        reply = await fake.wait_for(lambda: next(
            (m for m in fake.messages.values() if m.reference and m.embeds), None))
        await fake.wait_for(lambda: interaction.original and interaction.original.deleted)
    assert str(reply.reference["message_id"]) == posted.id
    assert reply.content.startswith("<@4000>")
    assert _first_frame(reply).tobytes() == _expected_input(data).tobytes()


async def test_dream_on_this_fetches_an_embedded_image_from_the_media_proxy(fake, start_bot):
    """An embedded image is fetched through its proxy_url (Discord's media proxy)."""
    data = _encoded(_photo((64, 64)), "PNG")
    proxy = fake.media_proxy_url("linked.png", data)
    embed = {"type": "image", "url": "https://example.invalid/linked.png",
             "thumbnail": {"url": "https://example.invalid/linked.png", "proxy_url": proxy,
                           "width": 64, "height": 64}}
    posted = fake.post_as_user("https://example.invalid/linked.png", embeds=[embed])
    async with start_bot(renderer=FastRenderer()):
        fake.message_command("Dream on this", posted.id)
        reply = await fake.wait_for(lambda: next(
            (m for m in fake.messages.values() if m.reference and m.embeds), None))
    assert len(fake.attachment_fetches) == 1
    assert _first_frame(reply).tobytes() == _expected_input(data).tobytes()


async def test_dream_on_this_without_an_image_says_so(fake, start_bot):
    posted = fake.post_as_user("no picture here")
    async with start_bot(renderer=FastRenderer()):
        interaction = fake.message_command("Dream on this", posted.id)
        await fake.wait_for(lambda: interaction.callbacks)
    assert "has no image to dream on" in interaction.callbacks[0]["data"]["content"]
    assert interaction.callbacks[0]["data"]["flags"] & EPHEMERAL


class FailingRenderer(FastRenderer):
    """Every render fails as a model that cannot be loaded does."""

    def render(self, jobs, on_pass=None, should_stop=None):
        raise ModelLoadError("1.4", "some/model", "no such folder")


async def test_a_failed_dream_names_no_other_command(fake, start_bot):
    """A /dream job that fails tells its user that the dream failed, never "/place"."""
    data = _encoded(_photo(), "PNG")
    async with start_bot(renderer=FailingRenderer()):
        interaction = fake.slash("dream", {"image": fake.user_attachment("me.png", data)})
        await fake.wait_for(lambda: interaction.original
                            and "failed" in (interaction.original.content or ""))
    text = interaction.original.content
    assert text.startswith("Sorry, your dream failed: model 1.4 could not be loaded")
    assert "/place" not in text


async def test_a_failed_dream_on_this_names_no_other_command(fake, start_bot):
    """A "Dream on this" job that fails tells its user that the dream failed, never
    "/place"."""
    data = _encoded(_photo((64, 64)), "PNG")
    posted = fake.post_as_user("look", attachments=[fake.user_attachment("cat.png", data)])
    async with start_bot(renderer=FailingRenderer()):
        interaction = fake.message_command("Dream on this", posted.id, user_id=4000)
        await fake.wait_for(lambda: interaction.original
                            and "failed" in (interaction.original.content or ""))
    text = interaction.original.content
    assert text.startswith("Sorry, your dream failed: model 1.4 could not be loaded")
    assert "/place" not in text


async def test_reroll_of_a_dream_result_after_a_restart(fake, start_bot, tmp_path):
    """A new process re-rolls the same square of the kept picture, and New crop takes
    another square of a wide one."""
    data = _encoded(_photo((200, 50)), "PNG")
    folder = tmp_path / "data"
    async with start_bot(renderer=FastRenderer(), data_dir=folder):
        first = await wait_result(fake, fake.slash(
            "dream", {"image": fake.user_attachment("wide.png", data)}))
    async with start_bot(renderer=FastRenderer(), data_dir=folder):
        ids = custom_ids(first)
        reroll = next(i for i in ids if i.startswith("place:reroll"))
        again = await wait_result(fake, fake.click(first.id, reroll, user_id=50))
    assert all(len(custom_id) <= 100 for custom_id in ids)
    assert _first_frame(again).tobytes() == _first_frame(first).tobytes()
    assert embed_fields(again)["Square"] == embed_fields(first)["Square"]
    assert len(fake.attachment_fetches) == 1  # the kept source, not a second download


async def test_reroll_keeps_the_prompt(fake, start_bot):
    """Re-roll of a prompted result renders with the same prompt and guidance."""
    prompt = "a castle made of pixels, at dusk " * 5  # past what a custom_id could hold
    async with start_bot(renderer=FastRenderer(), guidance=9.0):
        first = await wait_result(fake, fake.slash("place", {"prompt": prompt}))
        reroll = next(i for i in custom_ids(first) if i.startswith("place:reroll"))
        again = await wait_result(fake, fake.click(first.id, reroll, user_id=50))
    assert len(reroll) <= 100
    assert embed_fields(again)["Prompt"] == prompt.strip()
    assert embed_fields(again)["Guidance"] == "9.0"


async def test_the_synced_dream_offers_only_the_options_it_uses(fake, start_bot):
    """The /dream declaration the bot syncs has the picture and the options a picture's job
    uses, and none of a canvas crop's (canvas, x, y): /dream would ignore them."""
    async with start_bot(renderer=FastRenderer()):
        synced = [command for r in fake.requests
                  if r.method == "PUT" and r.path.endswith("/commands") for command in r.json]
    dream = next(command for command in synced if command["name"] == "dream")
    offered = {option["name"] for option in dream["options"]}
    assert offered == {"image", "model", "pixel", "seed", "strength", "recursions", "prompt"}


async def test_with_prompts_off_dream_offers_no_prompt_and_refuses_one(fake, start_bot):
    """PLACE_PROMPTS=false: /dream is synced without its prompt option, and a prompt sent by
    a client still holding the older declaration is refused ephemerally, with no job."""
    data = _encoded(_photo(), "PNG")
    async with start_bot(renderer=FastRenderer(), prompts=False) as bot:
        commands = {c["name"]: c for c in fake.commands[str(fake.guild_id)]}
        interaction = fake.slash("dream", {"image": fake.user_attachment("me.png", data)},
                                 undeclared={"prompt": "a castle"})
        await fake.wait_for(lambda: interaction.callbacks)
        assert len(bot.jobs.queue) + len(bot.jobs.queue.running) == 0
    assert "prompt" not in {o["name"] for o in commands["dream"]["options"]}
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
    assert "turned prompts off" in callback["data"]["content"]


@pytest.mark.parametrize("button", ["reroll", "newcrop"])
async def test_with_prompts_off_a_prompted_results_buttons_are_refused(fake, start_bot,
                                                                      tmp_path, button):
    """A prompted result from before the owner turned prompts off: its Re-roll and New crop
    say in one ephemeral line that prompts are off, and nothing renders."""
    folder = tmp_path / "data"
    async with start_bot(renderer=FastRenderer(), data_dir=folder):
        first = await wait_result(fake, fake.slash("place", {"prompt": "a castle"}))
    renderer = FastRenderer()
    async with start_bot(renderer=renderer, data_dir=folder, prompts=False) as bot:
        custom_id = next(i for i in custom_ids(first) if i.startswith(f"place:{button}"))
        click = fake.click(first.id, custom_id, user_id=50)
        await fake.wait_for(lambda: click.callbacks)
        assert len(bot.jobs.queue) + len(bot.jobs.queue.running) == 0
    callback = click.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
    assert "turned prompts off" in callback["data"]["content"]
    assert renderer.jobs_rendered == 0


async def test_an_expired_source_is_told_ephemerally(fake, start_bot, tmp_path):
    """A click after the kept picture has gone a week unused says it has expired."""
    folder = tmp_path / "data"
    data = _encoded(_photo((64, 64)), "PNG")
    async with start_bot(renderer=FastRenderer(), data_dir=folder) as bot:
        first = await wait_result(fake, fake.slash(
            "dream", {"image": fake.user_attachment("old.png", data)}))
        week_ago = time.time() - 8 * 86400
        for path in (folder / "sources").iterdir():
            os.utime(path, (week_ago, week_ago))
        reroll = next(i for i in custom_ids(first) if i.startswith("place:reroll"))
        click = fake.click(first.id, reroll, user_id=50)
        await fake.wait_for(lambda: click.ephemeral_texts)
        assert len(bot.jobs.queue) == 0
    assert "the picture of this result has expired" in click.ephemeral_texts[0]


async def test_only_the_requester_can_be_pinged(fake, start_bot):
    """Every message the bot sends allows no mention but its requester's, whatever a prompt
    says (@everyone, a user, a role)."""
    prompt = "@everyone <@123> <@&456> hello"
    async with start_bot(renderer=FastRenderer()):
        await wait_result(fake, fake.slash("place", {"prompt": prompt}, user_id=77))
    sent = [r for r in fake.requests if r.method in ("POST", "PATCH")
            and isinstance(r.json, dict) and ("content" in r.json or "data" in r.json)]
    assert sent
    for request in sent:
        body = request.json.get("data") or request.json  # an interaction callback's, or its own
        if "content" not in body and "embeds" not in body:
            continue
        mentions = body.get("allowed_mentions")
        assert mentions is not None, request.path
        assert mentions.get("parse") == []
        assert {str(user) for user in mentions.get("users", [])} <= {"77"}
