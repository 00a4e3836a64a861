# The creditstream image: `creditstream worker --web` by default; every other command
# (`creditstream topics`, `replay`, `dlq`, `config check`, ...) runs with the same image.
# Settings come from CREDITSTREAM_* environment variables (creditstream/settings.py).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
# the rules core compiled with mypyc (ops/build_core.py): a C compiler in this stage only; the
# build lands in the venv's site-packages (.build/core), where domain/__init__.py (and streams/__init__.py
# for the Avro reader and writer) finds it
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
RUN pip install '.[compile]' && cd / && python -m ops.build_core && python -m ops.build_core --check

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CREDITSTREAM_RUN_DIR=/var/lib/creditstream \
    CREDITSTREAM_LOG_FORMAT=json
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/creditstream --create-home creditstream
COPY --from=build /opt/venv /opt/venv
USER creditstream
WORKDIR /var/lib/creditstream
# The HTTP server of `creditstream worker --web`: query API, /health, /metrics (Settings.web_port).
EXPOSE 6066
CMD ["creditstream", "worker", "--web"]
