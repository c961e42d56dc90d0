# The two things a newcomer runs (see README.md). Each installs what it needs.
.PHONY: demo test setup

demo: setup
	npm run --silent build
	npm run --silent demo

test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh
