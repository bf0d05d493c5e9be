# The two commands: `make run` and `make test`. Everything else is a helper for them.
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: run test lint install check-pytest asyncapi openapi screenshots

# Debian's Chromium, which the browser tests drive through Playwright (never a downloaded
# browser: only the distribution's registry is reachable).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

install: $(UV)
	$(UV) sync --frozen

## Start the whole system (broker, database, ConnectWise sandbox, four services).
run: install
	$(UV) run syntaskio-dev run

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

## Lint, type-check and run every test (unit, integration, end-to-end, browser).
test: install lint $(CHROMIUM)
	$(UV) run pytest --durations=30  # the slowest, to keep the suite within its 20 minutes

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

## Regenerate the AsyncAPI document from the code (a test fails when it is stale).
asyncapi: install
	$(UV) run faststream docs gen syntaskio_aggregator.asyncapi:app -o docs/asyncapi.json

openapi: install
	$(UV) run python -m syntaskio_gateway.openapi docs/openapi.json

## Retake the screenshots in docs/img (a test run never rewrites them).
screenshots: install $(CHROMIUM)
	UPDATE_SCREENSHOTS=1 $(UV) run pytest tests/e2e/test_dashboard_browser.py \
		tests/e2e/test_admin_console_browser.py tests/e2e/test_ticket_browser.py \
		tests/e2e/test_my_day_browser.py tests/e2e/test_notifications_browser.py \
		-k "screenshots or connects_the_company or read_its_notes or see_my_day or told_at_once"
