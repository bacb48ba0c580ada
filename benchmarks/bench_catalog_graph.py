"""The catalog graph's numbers: duplicates and quality on the corpus; `catalog_duplicates` and
`catalog_export` over a synthetic catalog of 100,000 artifacts on SQLite and PostgreSQL.

Corpus: every bundle is cloned bare, detected, extracted, scored (lib/quality) and validated
(`format.*` findings from the manifest bytes) and written to a scratch SQLite catalog as its own
source; then the duplicate clusters are computed across all of them.

Synthetic: 1,000 sources of 100 artifacts, 20 % of them copies of another source's artifact
(clusters of 2 to 5), bulk-inserted; timed: `refresh_duplicates` (first: writes every row; again:
nothing changed) and `write_export`.

    .venv/bin/python benchmarks/bench_catalog_graph.py [--rows 100000] [--skip-corpus]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import collections
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pygit2
import sqlalchemy as sa

from skillmeat_pipeline.lib.catalog.duplicates import refresh_duplicates
from skillmeat_pipeline.lib.catalog.engine import normalize_url
from skillmeat_pipeline.lib.catalog.export import write_export
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.summary import quality_band
from skillmeat_pipeline.lib.catalog.tables import catalog_entries
from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.core.strategy import CloneTarget, Strategy, common_root
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline.lib.quality.rubric import with_quality
from skillmeat_pipeline.lib.quality.validation import format_findings

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def corpus(corpus_dir: Path, tmp: Path) -> None:
    catalog = Catalog.from_url(f"sqlite:///{tmp / 'corpus.sqlite'}")
    catalog.migrate()
    rules: collections.Counter[str] = collections.Counter()
    for bundle in sorted(corpus_dir.glob("*.bundle")):
        name = bundle.stem
        key = name.replace("+", "/", 1)
        target = tmp / f"{name}.git"
        subprocess.run(["git", "clone", "--quiet", "--bare", str(bundle), str(target)], check=True)
        snapshot = snapshot_commit(pygit2.Repository(str(target)))
        detection = detect_artifacts(snapshot, repo_name=key.split("/", 1)[1])
        entries = extract_catalog_entries(snapshot, detection, source_key=key, indexed_at=T0)
        blobs = {e.path: e for e in snapshot.entries}
        scored = []
        for entry in entries:
            findings = []
            blob = blobs.get(entry.manifest_path or "")
            if blob is not None:
                data = snapshot.read_blob(blob)
                findings = format_findings(
                    entry.artifact_type, entry.manifest_path, data, folder=entry.path
                )
            rules.update(f.rule for f in findings)
            scored.append(with_quality(entry, findings))
        catalog.upsert_sources([SourceConfig(key=key, url=f"https://example.invalid/{key}.git")])
        paths = sorted({e.path for e in scored})
        clone_target = CloneTarget(
            strategy=Strategy.SPARSE_DIRECTORY,
            patterns=[],
            artifacts_root=common_root(paths) if paths else None,
            artifact_paths=paths,
            commit_sha=snapshot.commit_sha,
            tree_sha=snapshot.tree_sha,
            computed_at=T0,
        )
        catalog.write_scan(
            key, scored, clone_target=clone_target, api_calls=0, marketplace=None, indexed_at=T0
        )
    stats = refresh_duplicates(catalog)
    with catalog.engine.connect() as conn:
        qualities = [
            q
            for (q,) in conn.execute(
                sa.select(catalog_entries.c.quality).where(catalog_entries.c.status != "removed")
            )
        ]
    catalog.dispose()
    bands = collections.Counter(quality_band(q) for q in qualities)
    scores = [q for q in qualities if q is not None]
    deciles = statistics.quantiles(scores, n=10) if len(scores) > 1 else scores
    print(
        f"corpus: {stats.live_rows} artifacts, {stats.clusters} duplicate clusters, "
        f"{stats.duplicate_rows} copies ({stats.duplicate_share:.1%} duplicate share), "
        f"largest cluster {stats.largest_cluster}\n"
        f"  quality: median {statistics.median(scores):.0f}, mean {statistics.mean(scores):.1f}, "
        f"deciles {[round(d) for d in deciles]}\n"
        f"  quality bands: {dict(sorted(bands.items()))}\n"
        f"  format findings by rule: {dict(rules.most_common())}"
    )


def synthetic_rows(rows: int, per_source: int = 100) -> tuple[list[str], list[dict[str, object]]]:
    rng = random.Random(15)
    sources = [f"synthetic/source-{i:05d}" for i in range(rows // per_source)]
    out: list[dict[str, object]] = []
    for n in range(rows):
        source = sources[n // per_source]
        # 20 % are copies of an artifact of another source: clusters of 2 to 5
        sha = f"tree-{rng.randrange(rows // 12)}" if rng.random() < 0.2 else f"tree-own-{n}"
        seen = T0 + timedelta(seconds=n)
        out.append(
            {
                "source_key": source,
                "path": f"skills/skill-{n % per_source}",
                "artifact_type": "skill",
                "name": f"skill-{n}",
                "description": f"Synthetic skill {n} for the catalog graph benchmark.",
                "tags": [],
                "tools": [],
                "confidence": 90,
                "signals": ["valid_frontmatter"],
                "problems": [],
                "content_sha": sha,
                "search_text": f"skill-{n}",
                "deep_index_files": [],
                "status": "new",
                "indexed_at": seen,
                "first_seen_at": seen,
                "metadata": {},
                "quality": rng.randrange(101),
            }
        )
    return sources, out


def synthetic(url: str, rows: int, tmp: Path, label: str) -> None:
    catalog = Catalog.from_url(url)
    catalog.migrate()
    sources, entries = synthetic_rows(rows)
    catalog.upsert_sources([SourceConfig(key=k, url=f"https://x.invalid/{k}.git") for k in sources])
    with catalog.engine.begin() as conn:
        for start in range(0, len(entries), 5000):
            conn.execute(sa.insert(catalog_entries), entries[start : start + 5000])
    started = time.perf_counter()
    first = refresh_duplicates(catalog)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again = refresh_duplicates(catalog)
    again_s = time.perf_counter() - started
    started = time.perf_counter()
    export = write_export(catalog, tmp / f"export-{label}")
    export_s = time.perf_counter() - started
    catalog.dispose()
    print(
        f"{label}, {rows} artifacts:\n"
        f"  catalog_duplicates first {first_s:6.2f} s ({first.rows_written} rows written, "
        f"{first.clusters} clusters, {first.duplicate_share:.1%} copies)\n"
        f"  catalog_duplicates again {again_s:6.2f} s ({again.rows_written} rows written)\n"
        f"  catalog_export           {export_s:6.2f} s ({export.rows} rows, "
        f"{export.bytes / 1e6:.1f} MB gzip)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-catalog-graph-") as name:
        tmp = Path(name)
        if not args.skip_corpus:
            corpus(args.corpus, tmp)
        synthetic(f"sqlite:///{tmp / 'synthetic.sqlite'}", args.rows, tmp, "SQLite")
        admin = sa.create_engine(normalize_url(args.postgres), isolation_level="AUTOCOMMIT")
        database = f"bench_catalog_graph_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
        try:
            url = normalize_url(args.postgres).set(database=database)
            synthetic(url.render_as_string(hide_password=False), args.rows, tmp, "PostgreSQL")
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
