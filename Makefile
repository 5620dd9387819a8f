# The two commands of the README: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: setup demo test bench lint twin-down

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

# Three workers: the twin's tests split over two twins of their own, the rest beside them (tests/conftest.py).
test: setup
	$(VENV)/pytest -n 3 --dist loadgroup

bench: setup
	$(VENV)/python -m benchmarks

lint: setup
	$(VENV)/ruff check src tests benchmarks
	shellcheck -x bootstrap/*.sh bootstrap/steps/*.sh bootstrap/head.d/*.sh bootstrap/lib/*.sh scripts/*.sh scripts/demo.d/*.sh

twin-down:
	$(VENV)/hpctool local down
