# One image for the code server (default command), the webserver, the daemon, the webhook
# receiver and the Celery workers (SKILLMEAT_EXECUTOR=celery); README.md "Deployment" and "More
# machines" show each command.
FROM python:3.11-slim

# git reads bundle files for `skillmeat-pipeline detect`; pygit2's wheel bundles libgit2 itself.
RUN apt-get update \
    && apt-get install --no-install-recommends -y git \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 skillmeat
WORKDIR /opt/skillmeat

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir skillmeat_pipeline \
    && touch skillmeat_pipeline/__init__.py \
    && pip install --no-cache-dir '.[celery]' \
    && pip uninstall --yes skillmeat-pipeline \
    && rm -rf skillmeat_pipeline build *.egg-info

COPY skillmeat_pipeline ./skillmeat_pipeline
RUN pip install --no-cache-dir --no-deps . && rm -rf build *.egg-info

# The instance config reads PostgreSQL settings from DAGSTER_PG_* at start; the non-root user
# owns DAGSTER_HOME because Dagster writes compute logs and state files under it. Both files live
# in deploy/ so that nothing at the repository root configures `dg` or `dagster dev`.
ENV DAGSTER_HOME=/opt/dagster/home
COPY deploy/dagster.yaml deploy/workspace.yaml deploy/celery.yaml /opt/dagster/home/
RUN chown -R skillmeat:skillmeat /opt/dagster/home
USER skillmeat
WORKDIR /opt/dagster/home

# 4000: code server (gRPC); 3000: webserver; 8090: webhook receiver
EXPOSE 4000 3000 8090
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "skillmeat_pipeline.definitions"]
