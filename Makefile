# Shorthands for the README commands.
.PHONY: demo demo-down test
demo:
	hack/demo.sh
demo-down:
	hack/demo.sh down
test:
	hack/test.sh
