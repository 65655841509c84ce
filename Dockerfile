# The bot on an NVIDIA GPU host. Build and run: docker compose up -d --build.
FROM python:3.11-slim

# The code lives in /app (read-only for the bot); the bot runs in its home, so a relative
# PLACE_DATA_DIR (config.example.env's "data") lands on the data volume, as the absolute
# default does. PYTHONPATH lets the health check import the code from there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/home/bot/.cache/huggingface \
    PLACE_DATA_DIR=/home/bot/data

# gcc: Triton (torch.compile's GPU backend) builds small launchers with a C compiler at run time.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 bot

# Dependencies first, so a code change does not reinstall torch: the locked versions, checked
# against their hashes. PyPI's Linux torch wheels are CUDA builds (the CUDA runtime comes with
# them; the host only needs the driver).
COPY locks/cuda.txt /app/locks/
RUN pip install -r /app/locks/cuda.txt

# The code last. No .env, data, tests, bench or docs: .dockerignore keeps them out.
COPY --chown=root:root . /app

USER bot
WORKDIR /home/bot
# Created by the bot's user, so the named volumes mounted here start out owned by it. The
# r/Place Atlas goes to PLACE_ATLAS_DIR's default, ~/.cache/place-dreams/atlas.
RUN mkdir -p "$HF_HOME" "$PLACE_DATA_DIR" /home/bot/.cache/place-dreams
VOLUME ["/home/bot/.cache/huggingface", "/home/bot/data", "/home/bot/.cache/place-dreams"]

# Healthy only while the bot is connected to Discord (it refreshes a heartbeat file then).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "placebot.health"]

CMD ["python", "/app/bot.py"]
