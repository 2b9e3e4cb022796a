# The README's two commands: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml scripts/install.sh
	scripts/install.sh $(VENV) dev 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import farm.cli, farm.workers, farm.migrations, torch"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/farm run examples/quick.yaml --database-url sqlite:///farm-demo.db

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy farm
	$(VENV)/bin/pytest -ra

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy farm

clean:
	rm -rf $(VENV) farm-demo.db
