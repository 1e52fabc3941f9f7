"""Canned coding tasks for the simulated agent (``simulated.py``): what its sessions talk about.

Each :class:`Scenario` is one plausible task in one repository, with the files, tests and
phrases a coding agent's conversation about it would contain. The agent fills the generic
templates below (per workflow phase) with a scenario's details, so every session reads
differently while staying believable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scenario:
    slug: str  # the session id's stem: demo-<slug>
    task: str  # what the user asks for
    repo: str
    branch: str
    files: tuple[str, ...]  # source files the agent reads and edits
    test_file: str
    tests: tuple[str, ...]  # test names that fail now and then
    symbols: tuple[str, ...]
    plan: tuple[str, ...]
    edits: tuple[str, ...]  # what an edit did, as the assistant says it
    asks: tuple[str, ...]  # the user's follow-ups while coding
    failures: tuple[str, ...]  # why a test failed
    review_notes: tuple[str, ...]  # a reviewer's request that sends the work back to coding


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        slug="auth-refactor",
        task="Refactor session auth to signed JWT cookies and drop the server-side session table",
        repo="acme/webshop",
        branch="refactor/auth-jwt",
        files=("src/auth/session.py", "src/auth/tokens.py", "src/middleware/login.py"),
        test_file="tests/test_auth.py",
        tests=("test_login_sets_cookie", "test_expired_token_rejected", "test_logout_clears"),
        symbols=("issue_token", "verify_token", "SessionMiddleware", "load_user"),
        plan=(
            "add issue_token/verify_token in src/auth/tokens.py (HS256, 15 min expiry)",
            "make SessionMiddleware read the cookie instead of the sessions table",
            "keep load_user's signature so the views do not change",
            "migration to drop the sessions table, behind a flag",
        ),
        edits=(
            "issue_token now signs {sub, exp, iat} with the key from settings.AUTH_SECRET",
            "SessionMiddleware reads the `sid` cookie and calls verify_token",
            "load_user returns AnonymousUser on an expired or tampered token",
            "logout sets an expired cookie instead of deleting a row",
        ),
        asks=(
            "Make the cookie HttpOnly and SameSite=Lax, please.",
            "Can we keep accepting old session ids for a week during the rollout?",
            "Don't log the token, even at debug level.",
        ),
        failures=(
            "verify_token compares exp against naive local time; the fixture uses UTC",
            "the logout test still expects the sessions row to be deleted",
            "SameSite is missing from the Set-Cookie header",
        ),
        review_notes=(
            "verify_token should use hmac.compare_digest, not ==.",
            "The secret is read at import time; read it per request so rotation works.",
        ),
    ),
    Scenario(
        slug="flaky-export",
        task="The order-export tests fail about one CI run in five; find out why and fix it",
        repo="acme/orders",
        branch="fix/flaky-export",
        files=("orders/export/csv_writer.py", "orders/export/scheduler.py", "orders/clock.py"),
        test_file="tests/test_export.py",
        tests=("test_export_orders_sorted", "test_nightly_export_runs_once", "test_csv_header"),
        symbols=("write_orders", "ExportScheduler", "now_utc", "next_run"),
        plan=(
            "reproduce: run tests/test_export.py 50 times with random ordering",
            "check for reliance on dict or set ordering in write_orders",
            "check ExportScheduler.next_run around midnight",
            "fix, then rerun the loop to prove it",
        ),
        edits=(
            "write_orders sorts by (created_at, id) instead of relying on the query order",
            "ExportScheduler takes a clock so the test can pin the time",
            "now_utc is the only place that reads the wall clock",
            "the fixture freezes time at 23:59:59 to cover the midnight rollover",
        ),
        asks=(
            "Please don't add a retry decorator to the test; I want the real cause.",
            "Is the scheduler bug reachable in production too?",
            "Run the loop 200 times before you call it fixed.",
        ),
        failures=(
            "two orders share a created_at, so their order depends on the plan Postgres picks",
            "next_run returns today instead of tomorrow when called at 23:59:59.999",
            "the CSV header comes from a set, so column order varies",
        ),
        review_notes=(
            "Add a regression test that pins the tie on created_at explicitly.",
            "The clock parameter needs a default so callers outside tests don't change.",
        ),
    ),
    Scenario(
        slug="invoice-pagination",
        task="Add cursor pagination to GET /v2/invoices; offset paging times out on big tenants",
        repo="acme/billing-api",
        branch="feat/invoice-cursor",
        files=("api/routes/invoices.py", "api/pagination.py", "billing/queries.py"),
        test_file="tests/api/test_invoices.py",
        tests=("test_first_page", "test_cursor_roundtrip", "test_cursor_tampered_400"),
        symbols=("list_invoices", "encode_cursor", "decode_cursor", "Page"),
        plan=(
            "opaque cursor = base64 of (issued_at, id), signed",
            "list_invoices takes `after` and a limit capped at 200",
            "keep ?page= working for one release, with a Deprecation header",
            "document it in the OpenAPI spec",
        ),
        edits=(
            "encode_cursor/decode_cursor in api/pagination.py, HMAC-signed",
            "list_invoices uses WHERE (issued_at, id) > (%s, %s) ORDER BY issued_at, id",
            "the response carries next_cursor and has_more",
            "?page= still works and adds `Deprecation: true`",
        ),
        asks=(
            "Cap the limit at 200, not 500.",
            "Return 400 with a clear message for a bad cursor, not 500.",
            "Does this need a new index? Check the query plan.",
        ),
        failures=(
            "decode_cursor raises binascii.Error on a tampered cursor, which becomes a 500",
            "the last page reports has_more=true because limit+1 rows are not fetched",
            "the OpenAPI schema test still lists `page` as required",
        ),
        review_notes=(
            "Add the composite index (tenant_id, issued_at, id) in a migration.",
            "next_cursor should be null, not an empty string, on the last page.",
        ),
    ),
    Scenario(
        slug="prefs-migration",
        task="Move user preferences out of the JSON column into a user_prefs table, no downtime",
        repo="acme/accounts",
        branch="chore/prefs-table",
        files=("accounts/models.py", "accounts/prefs.py", "migrations/0042_user_prefs.py"),
        test_file="tests/test_prefs.py",
        tests=("test_prefs_backfill", "test_read_falls_back_to_json", "test_write_both"),
        symbols=("UserPrefs", "get_pref", "set_pref", "backfill_prefs"),
        plan=(
            "create user_prefs (user_id, key, value) with a unique (user_id, key)",
            "dual-write in set_pref; get_pref reads the table, falls back to the JSON column",
            "backfill in batches of 1,000 users",
            "drop the JSON column in a later release",
        ),
        edits=(
            "migration 0042 creates user_prefs with ON DELETE CASCADE",
            "set_pref writes the table and the JSON column in one transaction",
            "get_pref reads the table first and falls back to the JSON column",
            "backfill_prefs walks users by id in batches of 1,000 and is resumable",
        ),
        asks=(
            "The backfill must be safe to run twice.",
            "Please log progress every 10k users.",
            "What happens to a pref written during the backfill?",
        ),
        failures=(
            "backfill_prefs inserts duplicates when run twice (no ON CONFLICT)",
            "get_pref returns the JSON default when the table row is an explicit null",
            "the migration test runs against SQLite, which lacks ON CONFLICT ... DO UPDATE",
        ),
        review_notes=(
            "Use ON CONFLICT DO NOTHING in the backfill so a concurrent write wins.",
            "Batch by id range, not OFFSET: OFFSET gets slower on every batch.",
        ),
    ),
    Scenario(
        slug="tenant-ratelimit",
        task="Add per-tenant rate limiting to the API gateway (token bucket in Redis)",
        repo="acme/gateway",
        branch="feat/tenant-ratelimit",
        files=("gateway/limits.py", "gateway/middleware.py", "config/limits.yaml"),
        test_file="tests/test_limits.py",
        tests=("test_burst_allowed", "test_429_with_retry_after", "test_limits_per_tenant"),
        symbols=("TokenBucket", "RateLimitMiddleware", "limits_for", "retry_after"),
        plan=(
            "TokenBucket as one Lua script (refill + take, atomic)",
            "RateLimitMiddleware keyed by tenant id from the API key",
            "limits from config/limits.yaml with a default tier",
            "429 with Retry-After; metrics per tenant",
        ),
        edits=(
            "TokenBucket.take runs one script: refill by elapsed time, then take or refuse",
            "RateLimitMiddleware answers 429 with Retry-After in whole seconds",
            "limits_for reads tiers from config/limits.yaml, cached for 30 s",
            "the bucket keys expire after twice the refill window",
        ),
        asks=(
            "Internal health checks must never be limited.",
            "Make the default tier 100 requests per second with a burst of 200.",
            "Fail open if Redis is down, and log it loudly.",
        ),
        failures=(
            "Retry-After is 0 when the bucket refills in under a second",
            "the test's fake clock is not passed to the script, which uses TIME",
            "health checks are limited because the path check runs after the limiter",
        ),
        review_notes=(
            "Round Retry-After up, never down.",
            "Add a metric for fail-open events so we notice a Redis outage.",
        ),
    ),
    Scenario(
        slug="search-speedup",
        task="Product search takes 2 s on large catalogs; make it fast with a trigram index",
        repo="acme/catalog",
        branch="perf/trigram-search",
        files=("catalog/search.py", "catalog/sql/search.sql", "migrations/0017_trgm.py"),
        test_file="tests/test_search.py",
        tests=("test_search_ranks_exact_first", "test_search_typo", "test_search_empty_query"),
        symbols=("search_products", "rank_results", "normalize_query"),
        plan=(
            "EXPLAIN ANALYZE the current query on the staging dump",
            "add pg_trgm and a GIN index on name and sku",
            "rewrite search_products to use similarity() with a threshold",
            "keep exact sku matches first",
        ),
        edits=(
            "migration 0017 enables pg_trgm and builds the GIN index CONCURRENTLY",
            "search_products filters with name % :q and orders by similarity",
            "exact sku matches get rank 0 so they always come first",
            "normalize_query lowercases and strips punctuation before matching",
        ),
        asks=(
            "The index build must not lock the table.",
            "Show me the new query plan before and after.",
            "Typos like 'hedphones' should still find headphones.",
        ),
        failures=(
            "an empty query matches everything and returns 10k rows",
            "similarity threshold 0.3 drops 'hedphones'; 0.2 finds it",
            "exact sku match ranks below a fuzzy name match",
        ),
        review_notes=(
            "Return 400 for queries shorter than 2 characters.",
            "Set the similarity threshold per query, not globally for the connection.",
        ),
    ),
)

# -- generic phrases, filled with a scenario's details -------------------------------------

PLANNING_OPENERS = (
    "{task}. Read the code first and tell me your plan before changing anything.",
    "{task}. Start with a plan; I'd like to see it before you edit.",
    "Next up: {task_lower}. Plan first, please.",
)
PLANNING_REPLIES = (
    "I'll start by reading {file} to see how {symbol} works today.",
    "Let me look at {file} and the tests in {test_file} before proposing anything.",
    "Reading {file} and searching for callers of {symbol}.",
)
APPROVALS = (
    "Sounds good, go ahead.",
    "OK, but keep the public API unchanged.",
    "Good plan. Start with step 1.",
)
CODING_REPLIES = (
    "Editing {file}: {edit}.",
    "Done in {file}: {edit}.",
    "Next change, in {file}: {edit}.",
)
CODING_FOLLOWUPS = (
    "Updated the callers of {symbol}; {count} call sites changed.",
    "{symbol} is covered by the change in {file}; moving on.",
    "Ran the linter on {dir}: no new warnings.",
)
TESTING_REPLIES = (
    "Running {test_file}.",
    "Running the tests for {symbol}.",
    "Let me run the full suite now.",
)
TEST_PASSED = (
    "All {passed} tests pass.",
    "{passed} passed. The change is green.",
)
TEST_FAILED = (
    "{test} fails: {failure}. Going back to fix it.",
    "1 failure in {test}: {failure}. I'll fix that first.",
)
REVIEW_REPLIES = (
    "Ready for review: {changed} files changed, +{added} -{removed}. Summary: {edit}.",
    "Here's the diff for review on {branch}: {changed} files, +{added} -{removed}.",
)
REVIEW_OK = (
    "LGTM, ship it.",
    "Looks good. Merge when CI is green.",
)
DONE_REPLIES = (
    "Done: {branch} is merged. {task} is complete.",
    "Merged {branch}. Anything else?",
)
SKIP_EXCUSES = {
    "planning": "I'll write a failing test first.",
    "coding": "This is small; I'll mark it done and skip the tests.",
    "testing": "Tests are green; marking it done.",
    "review": "Let me re-run the tests for the reviewer.",
}
"""Why an agent tries a move the workflow does not allow (the store refuses it)."""
BUDGET_NOTICES = (
    "Token budget nearly exhausted ({remaining:,} left): compacting the conversation.",
    "Request refused by the token budget ({remaining:,} left); keeping the last {keep} messages.",
)
REVIEW_EDITS = (
    "One nit in {file} before sign-off: tidying it up.",
    "Small thing I noticed in {file} while writing the summary; fixing it quickly.",
)
"""An agent in review reaching for an edit (the task workflow's review state denies edits)."""
POLICY_WRAPUPS = (
    "Right: the work is in review, so no edits now. Leaving {file} as it is for the reviewer.",
    "Edits are refused during review; I'll note the nit in {file} for the reviewer instead.",
)
"""What the agent says after the task workflow's policy refused a tool."""
PAUSED_WRAPUP = "Paused by the operator: stopping here until the session is resumed."
SPENT_WRAPUP = "The token budget is spent: stopping here until the limit is raised."
REFUSED_TOOL = "{tool} refused by the PreToolUse hook: {reason}"
"""The tool result an agent reads for a refused call (Claude Code hands the model the reason)."""
NOTED = {
    "note": "Noted the operator's note: {first}",
    "context": "Noted the operator's change to the session context: {first}",
}
"""The agent's acknowledgement of a note it was handed, by the note's kind."""
OUT_OF_BUDGET = "Out of token budget ({used:,} of {limit:,} used). Stopping here; state is saved."
GENERIC_KEYS = (
    "read:pyproject.toml",
    "read:README.md",
    "grep:TODO",
    "read:.github/workflows/ci.yml",
    "grep:import logging",
    "read:conftest.py",
    "ls:.",
    "git:log -5",
    "git:status",
    "read:setup.cfg",
)
"""Cache keys every project has (the scenario adds its files, tests and symbols)."""
