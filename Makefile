# Thin wrapper around meson/ninja: `make demo`, `make check`, `make bench`.
-include config.mak
BUILD ?= build
SAN_BUILD ?= build-san
NINJA ?= ninja

.PHONY: all deps check check-quick check-san demo bench install clean distclean

all: $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	./configure --builddir=$(BUILD)

$(SAN_BUILD)/build.ninja: | deps
	meson setup $(SAN_BUILD) . -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debug -Doptimization=1 >/dev/null

# The whole suite, once on the normal build and once under ASan+UBSan.
# The last line is the count of every real test case from both runs.
check: all $(SAN_BUILD)/build.ninja
	$(NINJA) -C $(SAN_BUILD)
	@rc=0; \
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 || rc=1; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C $(SAN_BUILD) --print-errorlogs --num-processes 2 --suite unit --suite qtest --suite vus || rc=1; \
	python3 scripts/test-summary.py $(BUILD) $(SAN_BUILD) || rc=1; \
	exit $$rc

check-quick: all
	meson test -C $(BUILD) --print-errorlogs; python3 scripts/test-summary.py $(BUILD)

demo: all
	python3 scripts/demo.py $(BUILD)

bench: all
	./tests/bench/run.sh $(BUILD)

install: all
	meson install -C $(BUILD)

clean:
	[ ! -d $(BUILD) ] || $(NINJA) -C $(BUILD) clean
	[ ! -d $(SAN_BUILD) ] || $(NINJA) -C $(SAN_BUILD) clean

distclean:
	rm -rf $(BUILD) $(SAN_BUILD) config.mak
