"""Dashboard and audit-search latency at scale: 100,000 transfers and 2,000,000 audit events in PostgreSQL.

Usage (from the repository root; PostgreSQL must be running)::

    .venv/bin/python bench/tracking_scale.py
    .venv/bin/python bench/tracking_scale.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/handover_bench --reseed

The database is created if missing, migrated with the project's Alembic revisions, and seeded
once with ``INSERT ... SELECT generate_series`` (a minute or two); later runs reuse it unless
``--reseed``. 50 authorities and 2,000 schools; the largest authority holds 20,000 of the
transfers (a big county's caseload), the rest share 80,000. Deadlines are then computed by the
real code (:func:`portal.tracking.deadlines.refresh`), the largest authority on its imported
2026-27 term calendar.

What is timed is the domain functions the views call, inside an app context, not HTTP: the
dashboard (page 1 + the counts at the top, for the largest authority), the overdue filter, and
audit searches (an organisation admin's scope with an action filter; an authority auditor's
scope, which adds every event about its children's transfers). Goal (issue 5): p95 < 200 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/handover_bench"
AUTHORITIES = 50
SCHOOLS = 2000
TRANSFERS = 100_000
BIG_AUTHORITY_TRANSFERS = 20_000
EVENTS = 2_000_000
TODAY = date(2026, 11, 10)

SEED_SQL = [
    # Authorities 1..50, then schools 51..2050, each school in authority (n % 50) + 1.
    """INSERT INTO organisations (id, kind, name, la_code, is_active, max_transfer_days, created_at)
       SELECT n, 'LOCAL_AUTHORITY', 'Authority ' || n, lpad((800 + n)::text, 3, '0'), true, 30, now()
       FROM generate_series(1, :authorities) AS n""",
    """INSERT INTO organisations (id, kind, name, urn, la_code, establishment_number, local_authority_id,
                                 is_active, max_transfer_days, created_at)
       SELECT :authorities + n, 'SCHOOL', 'School ' || n, (100000 + n)::text, '999', lpad((n % 10000)::text, 4, '0'),
              (n % :authorities) + 1, true, 30, now()
       FROM generate_series(1, :schools) AS n""",
    # Per school a sender (id = school id) and a designated teacher; per authority a caseworker and an auditor.
    """INSERT INTO users (id, email, display_name, organisation_id, role, is_active, created_at)
       SELECT o.id, 'sender' || o.id || '@bench.example', 'Sender ' || o.id, o.id, 'SCHOOL_STAFF', true, now()
       FROM organisations o WHERE o.kind = 'SCHOOL'""",
    """INSERT INTO users (id, email, display_name, organisation_id, role, is_active, created_at)
       SELECT 10000 + o.id, 'dt' || o.id || '@bench.example', 'Teacher ' || o.id, o.id, 'DESIGNATED_TEACHER', true, now()
       FROM organisations o WHERE o.kind = 'SCHOOL'""",
    """INSERT INTO users (id, email, display_name, organisation_id, role, is_active, created_at)
       SELECT 20000 + n, 'caseworker' || n || '@bench.example', 'Caseworker ' || n, n, 'CASEWORKER', true, now()
       FROM generate_series(1, :authorities) AS n""",
    """INSERT INTO users (id, email, display_name, organisation_id, role, is_active, created_at)
       SELECT 30000 + n, 'auditor' || n || '@bench.example', 'Auditor ' || n, n, 'AUDITOR', true, now()
       FROM generate_series(1, :authorities) AS n""",
    # Transfers: the first 20,000 belong to authority 1, the rest spread over the others. A school of the
    # authority sends to the next school; leaving dates over the two years before "today".
    """INSERT INTO transfers (id, reference, status, sending_organisation_id, receiving_organisation_id,
                              responsible_authority_id, created_by_id, child_initials, child_date_of_birth, child_upn,
                              looked_after, left_on, note, created_at, sent_at, receipt_comment, receipt_confirmed_at)
       SELECT n, 'HO-' || upper(lpad(to_hex(n), 8, '0')),
              (ARRAY['DRAFT','SENT','SENT','OPENED','DOWNLOADED','RECEIPT_CONFIRMED','RECEIPT_CONFIRMED',
                     'RECEIPT_CONFIRMED','RECEIPT_CONFIRMED','AWAITING_DESIGNATED_TEACHER','REVOKED','EXPIRED'])[1 + n % 12],
              s.sending, s.sending % :schools + :authorities + 1, s.authority, s.sending,
              chr(65 + n % 26) || chr(65 + (n / 26) % 26), date '2012-01-01' + (n % 3000),
              CASE WHEN n % 3 = 0 THEN NULL ELSE 'A' || lpad((n % 1000000000000)::text, 12, '0') END,
              true, :today - (n % 730), '', now(), now(), '',
              CASE WHEN n % 12 BETWEEN 5 AND 8 THEN now() - ((n % 200) || ' days')::interval END
       FROM generate_series(1, :transfers) AS n,
       LATERAL (SELECT CASE WHEN n <= :big THEN 1 ELSE 2 + n % (:authorities - 1) END AS authority) a,
       LATERAL (SELECT :authorities + a.authority + :authorities * (n % (:schools / :authorities - 1)) AS sending,
                       a.authority) s""",
    # One or two documents per transfer; every fifth has a child-protection file.
    """INSERT INTO documents (id, transfer_id, category, display_filename, content_type, plaintext_size,
                              plaintext_sha256, object_key, content_format, uploaded_by_id, uploaded_at, stored_at)
       SELECT n, n, CASE WHEN n % 5 = 0 THEN 'CHILD_PROTECTION' ELSE 'COMMON_TRANSFER_FILE' END, 'record.pdf',
              'application/pdf', 1000, repeat('a', 64), 'bench-a-' || n, 'bench', t.created_by_id, now(), now()
       FROM generate_series(1, :transfers) AS n JOIN transfers t ON t.id = n""",
    """INSERT INTO documents (id, transfer_id, category, display_filename, content_type, plaintext_size,
                              plaintext_sha256, object_key, content_format, uploaded_by_id, uploaded_at, stored_at)
       SELECT :transfers + n, n * 2, 'PEP', 'pep.pdf', 'application/pdf', 1000, repeat('b', 64),
              'bench-b-' || n, 'bench', t.created_by_id, now(), now()
       FROM generate_series(1, :transfers / 2) AS n JOIN transfers t ON t.id = n * 2""",
    # 2,000,000 events over the last two years: twenty per transfer, by the sender's school or the receiver's.
    """INSERT INTO audit_events (sequence, occurred_at, actor_user_id, actor_organisation_id, action, object_type,
                                 object_id, outcome, client_address, request_id, details, previous_hash, event_hash)
       SELECT n, timestamp '2024-11-10' + (n * interval '31 seconds'),
              CASE WHEN n % 4 = 0 THEN 10000 + t.receiving_organisation_id ELSE t.created_by_id END,
              CASE WHEN n % 4 = 0 THEN t.receiving_organisation_id ELSE t.sending_organisation_id END,
              (ARRAY['transfer.create','document.upload','transfer.send','transfer.open','download_link.issue',
                     'document.download','transfer.confirm_receipt','auth.sign_in','auth.sign_out','access.denied'])[1 + n % 10],
              CASE WHEN n % 10 IN (1, 4, 5) THEN 'document' ELSE 'transfer' END,
              CASE WHEN n % 10 IN (1, 4, 5) THEN t.id::text ELSE t.id::text END,
              CASE WHEN n % 97 = 0 THEN 'denied' ELSE 'success' END, '192.0.2.' || (n % 250), md5(n::text), '{}',
              repeat('0', 64), repeat('0', 64)
       FROM generate_series(1, :events) AS n JOIN transfers t ON t.id = 1 + (n::bigint * 7919) % :transfers""",
    "UPDATE audit_chain_head SET last_sequence = :events",
    "SELECT setval(pg_get_serial_sequence('organisations', 'id'), 10000)",
    "SELECT setval(pg_get_serial_sequence('users', 'id'), 100000)",
    "SELECT setval(pg_get_serial_sequence('transfers', 'id'), 1000000)",
    "SELECT setval(pg_get_serial_sequence('documents', 'id'), 1000000)",
]


def ensure_database(url: str, reseed: bool) -> None:
    """Create the database if missing (dropping it first with ``--reseed``)."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
        ).scalar()
        if exists and reseed:
            connection.execute(text(f'DROP DATABASE "{target.database}" WITH (FORCE)'))
            exists = None
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def build_app(url: str) -> Any:
    """The portal on the bench database (testing settings: no secrets needed)."""
    from portal import create_app
    from portal.crypto.keyring import LocalKeyring

    return create_app(
        {
            "PORTAL_ENV": "testing",
            "PORTAL_INSTANCE_PATH": "/tmp/handover-bench-instance",
            "PORTAL_DATABASE_URL": url,
            "PORTAL_SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
            "PORTAL_KEYRING": LocalKeyring.generate_spec("bench-1"),
        }
    )


def seed(app: Any) -> None:
    """Migrate, then seed everything in SQL, then compute deadlines with the portal's own code."""
    from flask_migrate import upgrade

    from portal.extensions import db
    from portal.tracking import calendar, deadlines, ics

    with app.app_context():
        upgrade()
        if db.session.execute(text("SELECT count(*) FROM transfers")).scalar():
            print("Database already seeded (use --reseed to start again).")
            return
        params = {
            "authorities": AUTHORITIES,
            "schools": SCHOOLS,
            "transfers": TRANSFERS,
            "big": BIG_AUTHORITY_TRANSFERS,
            "events": EVENTS,
            "today": TODAY,
        }
        for statement in SEED_SQL:
            started = time.perf_counter()
            db.session.execute(text(statement), params)
            db.session.commit()
            print(f"  {time.perf_counter() - started:6.1f} s  {statement.split()[0]} {statement.split()[2]}")
        terms = REPO_ROOT / "tests" / "tracking" / "data" / "northshire-term-dates-2026-27.ics"
        calendar.replace_calendar(
            db.session, 1, ics.parse_term_dates(terms.read_bytes()).runs, user=None, source="ics"
        )
        db.session.commit()
        started = time.perf_counter()
        computed = deadlines.refresh(db.session)
        db.session.commit()
        print(f"  {time.perf_counter() - started:6.1f} s  computed {computed} deadlines")
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))


def timed(name: str, runs: int, call: Callable[[], object]) -> dict[str, float]:
    """p50 and p95 (ms) of ``runs`` calls after two warm-up calls."""
    for _ in range(2):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    result = {
        "p50": statistics.median(samples),
        "p95": samples[max(0, round(0.95 * len(samples)) - 1)],
        "max": samples[-1],
    }
    print(
        f"{name:58} p50 {result['p50']:7.1f} ms   p95 {result['p95']:7.1f} ms   max {result['max']:7.1f} ms"
    )
    return result


def measure(app: Any, runs: int) -> dict[str, dict[str, float]]:
    """Time the dashboard, the overdue filter and audit searches."""
    from portal.audit import viewer
    from portal.extensions import db
    from portal.tracking import dashboard

    results = {}
    with app.app_context():
        session = db.session
        big = 1
        total = session.execute(
            text("SELECT count(*) FROM transfers WHERE responsible_authority_id = 1")
        ).scalar()
        print(f"Authority {big}: {total} transfers; {EVENTS} audit events in all.")

        def dashboard_page() -> None:
            dashboard.page(session, big, dashboard.Filters(), TODAY)
            dashboard.counts(session, big, TODAY)
            session.rollback()

        def overdue() -> None:
            dashboard.page(session, big, dashboard.Filters(view=dashboard.View.OVERDUE), TODAY)
            session.rollback()

        def overdue_page_40() -> None:
            dashboard.page(session, big, dashboard.Filters(view=dashboard.View.OVERDUE, page=40), TODAY)
            session.rollback()

        school_admin = viewer.Scope(organisation_id=AUTHORITIES + 7)
        authority_auditor = viewer.Scope(organisation_id=big, children_of_authority=True)
        downloads = viewer.Filters(action="document.download")
        last_month = viewer.Filters(
            since=viewer_datetime(TODAY - timedelta(days=30)),
            until=viewer_datetime(TODAY),
            action="transfer.",
        )

        results["dashboard (page 1 + counts)"] = timed(
            "dashboard: page 1 + counts, 20,000-transfer authority", runs, dashboard_page
        )
        results["overdue filter"] = timed("dashboard: overdue filter, page 1", runs, overdue)
        results["overdue filter page 40"] = timed("dashboard: overdue filter, page 40", runs, overdue_page_40)
        results["audit: school, downloads"] = timed(
            "audit search: school admin, action=document.download",
            runs,
            lambda: viewer.search(session, school_admin, downloads),
        )
        results["audit: authority auditor, all"] = timed(
            "audit search: authority auditor (own + children), newest",
            runs,
            lambda: viewer.search(session, authority_auditor, viewer.Filters()),
        )
        results["audit: authority auditor, 30 days transfer.*"] = timed(
            "audit search: authority auditor, last 30 days, transfer.*",
            runs,
            lambda: viewer.search(session, authority_auditor, last_month),
        )
    return results


def viewer_datetime(day: date) -> Any:
    """Midnight UTC of ``day``."""
    from datetime import UTC, datetime
    from datetime import time as clock

    return datetime.combine(day, clock.min, tzinfo=UTC)


def main() -> None:
    """Seed if needed, then measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--reseed", action="store_true", help="drop and seed the database again")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    ensure_database(args.database_url, args.reseed)
    app = build_app(args.database_url)
    started = time.perf_counter()
    seed(app)
    print(f"Ready in {time.perf_counter() - started:.0f} s.")
    results = measure(app, args.runs)
    worst = max(r["p95"] for r in results.values())
    print(f"Worst p95: {worst:.1f} ms (goal < 200 ms): {'met' if worst < 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
