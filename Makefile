# The two commands a new machine needs (see README):
#   make run    install everything, prepare the embedded model, run specs/quickstart.yaml
#   make test   install everything, then lint, type-check and run the whole test suite
.PHONY: run test install

install:
	bash scripts/install.sh

run: install
	.venv/bin/taskloom run specs/quickstart.yaml

test: install
	bash scripts/test.sh
