# dqnmap-auto: CPU torch by default; `--build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124` (or any
# index with a CUDA build) for a GPU image.
#   docker build -t dqnmap-auto .
#   docker run --rm -v "$PWD/dqnmap-runs:/work/dqnmap-runs" dqnmap-auto study run studies/smoke.yaml
#   docker run --rm -p 8080:8080 -p 5000:5000 -v "$PWD/dqnmap-runs:/work/dqnmap-runs" \
#       dqnmap-auto dashboard --host 0.0.0.0
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Extras: PostgreSQL driver and Dask for multi-host studies (docs/multi-host.md); add "pixels" for MinAtar/Atari.
ARG EXTRAS=postgres,dask

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DQNMAP_DIR=/work/dqnmap-runs

# torch first, from the chosen index: a bare "torch" dependency would pull the multi-GB CUDA build.
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"

WORKDIR /opt/dqnmap-auto
COPY pyproject.toml README.md ./
COPY dqnmap_auto ./dqnmap_auto
# The project itself, with its extras (DL3013 asks for pins: the project's ranges are in pyproject.toml).
# hadolint ignore=DL3013
RUN pip install ".[${EXTRAS}]"

RUN useradd --create-home --uid 1000 dqnmap \
    && mkdir -p /work/dqnmap-runs \
    && chown -R dqnmap:dqnmap /work
COPY --chown=dqnmap:dqnmap studies /work/studies
USER 1000:1000
WORKDIR /work
VOLUME ["/work/dqnmap-runs"]
# optuna-dashboard, MLflow UI
EXPOSE 8080 5000

ENTRYPOINT ["dqnmap-auto"]
CMD ["--help"]
