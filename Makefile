# Two commands do all set-up on a fresh machine (see README):
#   make demo   - set up .venv and run the main job on the embedded defaults
#   make test   - set up .venv and run the whole test suite
.PHONY: setup demo test bench

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/larimar demo

test: setup
	bash scripts/test.sh

bench: setup
	.venv/bin/larimar bench memory
