# framesift on the CPU. Build: docker build -t framesift .
# Run:   docker run --rm --stop-timeout 30 -v "$PWD/data:/data" -p 9108:9108 framesift \
#          run rtsp://cam/1 --model demo --al-config realistic --target /data/dataset \
#          --metrics-port 9108 --metrics-host 0.0.0.0
# docker stop sends SIGTERM: framesift stops in order and writes what is queued within --drain-timeout (10 s), so
# give the container a stop timeout above it (--stop-timeout 30; Docker's default is 10 s).
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY configs ./configs
COPY framesift ./framesift
RUN pip install '.[cpu]' && rm -rf /src \
    && useradd --create-home --uid 1000 framesift && mkdir /data && chown framesift /data

USER framesift
WORKDIR /data
EXPOSE 9108
ENTRYPOINT ["framesift"]
CMD ["--help"]
