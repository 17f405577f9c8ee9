# The two commands of README.md:
#   make book   build the default corpus, execute every chapter in the `cpu` profile, render the site
#   make test   nbdev_test (the `ci` profile) and pytest tests/ (two workers, one test file per worker at a time)
# Each sets up its own local virtual environment (.venv) with the package installed editable.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= cpu
SITE   ?= _site

.PHONY: book test venv nbs site clean-venv

venv: $(STAMP)

$(STAMP): settings.ini setup.py tools/install-reference.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	bash tools/install-reference.sh $(BIN)/pip
	touch $(STAMP)

test: venv
	XTTS_BOOK_PROFILE=ci $(BIN)/nbdev_test --n_workers 2 --timing
	XTTS_BOOK_PROFILE=ci $(BIN)/python -m pytest tests -q -n 2 --dist loadfile

# make book ONLY=07_vqvae executes one chapter (comma-separate for more) and renders them all
book: venv
	$(BIN)/python tools/build_book.py --profile $(PROFILE) --site $(SITE) $(if $(ONLY),--only $(ONLY))

clean-venv:
	rm -rf $(VENV)
