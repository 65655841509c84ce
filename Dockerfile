# The bot on an NVIDIA GPU host. Build: docker compose build. Run: docker compose up -d.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/home/bot/.cache/huggingface \
    PLACE_DATA_DIR=/home/bot/data

# gcc: Triton (torch.compile's GPU backend) builds small launchers with a C compiler at run time.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 bot
WORKDIR /app

# Dependencies first, so a code change does not reinstall torch. PyPI's Linux torch wheels
# are CUDA builds (the CUDA runtime comes with them; the host only needs the driver).
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code last. No .env, outputs or data: .dockerignore keeps them out; secrets come at run time.
COPY --chown=bot:bot . .

USER bot
RUN mkdir -p "$HF_HOME" "$PLACE_DATA_DIR"
VOLUME ["/home/bot/.cache/huggingface", "/home/bot/data"]

# Healthy only while the bot is connected to Discord (it refreshes a heartbeat file then).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "placebot.health"]

CMD ["python", "bot.py"]
