# make demo [PORT=8000] : set up a virtual environment from nothing and serve the demo site
#                         (installs the engine and Django only: the `demo` extra)
# make screenshots       : retake docs/img/dashboard*.png in headless Chromium
# make test              : set up a virtual environment from nothing and run the test suite
# make bench-deploy      : the demo under gunicorn/PostgreSQL/memcached/Redis and wrk, against
#                          cachalot and cacheops (own venv in .cache/bench-venv; ~13 min)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
PORT ?= 8000

.PHONY: demo test test-matrix test-slow test-orm bench bench-deploy venv clean screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q '.[demo]'  # not editable: manage.py runs this tree's code
	touch $(DEMO_STAMP)

venv: $(STAMP)

# The whole suite on SQLite (and PostgreSQL and MariaDB where a test asks for them), then the
# Django suite again with PostgreSQL, and with MariaDB/MySQL, as Django's database, both on the newest Django and SQLAlchemy; then
# the adapters' suites on the oldest supported pair (Django 4.2, SQLAlchemy 2.0) in a
# virtualenv of their own (noxfile.py).
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -p no:cacheprovider
	CACHEDEPS_TEST_DB=postgresql $(BIN)/python -m pytest -m "not slow" -p no:cacheprovider tests/django
	CACHEDEPS_TEST_DB=mysql $(BIN)/python -m pytest -m "not slow" -p no:cacheprovider tests/django
	$(BIN)/python -m nox -t oldest

# Every Django x SQLAlchemy pair of the matrix, then README's compatibility table from the results.
test-matrix: $(STAMP)
	$(BIN)/python -m nox -t matrix
	$(BIN)/python -m nox -s table

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -p no:cacheprovider

# Django's and SQLAlchemy's own ORM tests through cachedeps, with the stock backends run too
# for comparison: failures per class, hit and fill counts (see tests/orm_suites/run.py).
test-orm: $(STAMP)
	$(BIN)/python -m tests.orm_suites.run django --db sqlite --compare
	$(BIN)/python -m tests.orm_suites.run django --db postgresql --mode testcase --compare
	$(BIN)/python -m tests.orm_suites.run django --db postgresql --mode autocommit --compare
	$(BIN)/python -m tests.orm_suites.run sqla --db sqlite --compare
	$(BIN)/python -m tests.orm_suites.run sqla --db postgresql --compare
	$(BIN)/python -m tests.orm_suites.run django --db mysql --mode both --compare
	$(BIN)/python -m tests.orm_suites.run sqla --db mysql --compare

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Needs wrk, memcached, redis-server and PostgreSQL's server binaries (it starts its own cluster);
# installs its own venv.
bench-deploy:
	$(PYTHON) -m benchmarks deploy

demo: $(DEMO_STAMP)
	$(BIN)/python testproject/manage.py migrate --noinput
	$(BIN)/python testproject/manage.py seed_bookmarks
	@echo "demo: http://127.0.0.1:$(PORT)/  (staff account: demo / demo-password)"
	$(BIN)/python testproject/manage.py runserver 127.0.0.1:$(PORT)

screenshots: $(STAMP)
	$(BIN)/python -m tests.web.screenshots

clean:
	rm -rf $(VENV) build *.egg-info .nox .matrix-results
