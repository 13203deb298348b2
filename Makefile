# The two commands of the README:  `make book`  and  `make test`.
# Both create/refresh .venv from the pinned lock first (scripts/bootstrap.sh; idempotent).
PY := .venv/bin/python
# System packages the tests need (Debian chromium drives tests/test_site.py through playwright;
# bootstrap installs what `dpkg -s` says is missing, as root).
TEST_APT := chromium
BOOK_APT :=

.PHONY: env book test bench lock clean

env:
	@scripts/bootstrap.sh

book:
	@scripts/bootstrap.sh $(BOOK_APT)
	@$(PY) -m vssl_helpers.cli book

test:
	@scripts/bootstrap.sh $(TEST_APT)
	@$(PY) -m pytest -q $(PYTEST_ARGS)

bench:
	@scripts/bootstrap.sh
	@$(PY) benchmarks/metrics.py

# Re-resolve the lock from requirements.in (needs the package registry).
lock:
	rm -rf .lockenv && python3.11 -m venv .lockenv && .lockenv/bin/pip install -q -r requirements.in
	.lockenv/bin/pip freeze --exclude-editable > requirements.txt && rm -rf .lockenv

clean:
	rm -rf _build book/generated
