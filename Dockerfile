# One image for the code server (default command), the webserver and the daemon.
FROM python:3.11-slim

# git reads bundle files for `skillmeat-pipeline detect`; pygit2's wheel bundles libgit2 itself.
RUN apt-get update \
    && apt-get install --no-install-recommends -y git \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 skillmeat
WORKDIR /opt/skillmeat
COPY pyproject.toml README.md ./
COPY skillmeat_pipeline ./skillmeat_pipeline
RUN pip install --no-cache-dir .

COPY dagster.yaml workspace.yaml /opt/dagster/home/
ENV DAGSTER_HOME=/opt/dagster/home
USER skillmeat
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "skillmeat_pipeline.definitions"]
