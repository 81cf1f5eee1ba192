# Thin wrapper around meson/ninja: `make demo`, `make check`, `make bench`.
-include config.mak
BUILD ?= build
SAN_BUILD ?= build-san
FUZZ_BUILD ?= build-fuzz
# The libFuzzer targets, and one seed of each (the build saves them all
# with the fuzz tree's own programs).
FUZZERS = subprojects/libvfio-user-server/fuzz/fuzz-vus-decoder \
	tests/fuzz/fuzz-migration-stream tests/fuzz/seed-plain \
	tests/fuzz/fuzz-multifd tests/fuzz/multifd-plain \
	tests/fuzz/fuzz-return-path tests/fuzz/rp-plain \
	tests/fuzz/fuzz-qmp tests/fuzz/qmp-queries \
	tests/fuzz/fuzz-mapped-ram tests/fuzz/mapped-ram-stopped \
	tests/fuzz/fuzz-vfio-user-client tests/fuzz/vfio-user-client \
	tests/fuzz/vus-client-session
# make fuzz: seconds per target, and the tests to run (all by default:
# FUZZ_TARGETS='qmp-fuzz multifd-fuzz' picks some; meson test --list
# -C build-fuzz --suite vmig:fuzz names them).
FUZZ_TIME ?= 600
FUZZ_TARGETS ?=
SAN_OPTS = -Db_sanitize=address,undefined -Db_lundef=false \
	-Dbuildtype=debug -Doptimization=1
NINJA ?= ninja

.PHONY: all deps deps-check check check-quick check-san fuzz demo demo-virtio-net demo-kernel bench vm-shell install clean distclean

all: $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

deps:
	@./scripts/install-deps.sh

deps-check:
	@./scripts/install-deps.sh check

$(BUILD)/build.ninja: | deps
	./configure --builddir=$(BUILD)

$(SAN_BUILD)/build.ninja: | deps
	meson setup $(SAN_BUILD) . $(SAN_OPTS) >/dev/null

# A clang tree for the libFuzzer targets only (ASan+UBSan too).
$(FUZZ_BUILD)/build.ninja: | deps-check
	CC=clang meson setup $(FUZZ_BUILD) . $(SAN_OPTS) >/dev/null

# The whole suite, once on the normal build (with the test VM's vfio-kernel
# cases, tests/vm/) and once under ASan+UBSan (without them), then short
# libFuzzer runs of every fuzz target (docs/devel/fuzzing.rst).  The last
# line is the count of every real test case from all the runs.
check: all $(SAN_BUILD)/build.ninja $(FUZZ_BUILD)/build.ninja
	$(NINJA) -C $(SAN_BUILD)
	$(NINJA) -C $(FUZZ_BUILD) $(FUZZERS)
	@rc=0; \
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 || rc=1; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C $(SAN_BUILD) --print-errorlogs --num-processes 2 --suite unit --suite qtest --suite vus || rc=1; \
	meson test -C $(FUZZ_BUILD) --no-rebuild --print-errorlogs --suite fuzz || rc=1; \
	python3 scripts/test-summary.py $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD) || rc=1; \
	exit $$rc

# A fuzzing campaign: every libFuzzer target for FUZZ_TIME seconds, one
# after the other on one core; each target's corpus grows in
# build-fuzz/fuzz-campaign/TARGET/ from one campaign to the next, and its
# findings land in artifacts/ there (docs/devel/fuzzing.rst).
fuzz: $(FUZZ_BUILD)/build.ninja
	$(NINJA) -C $(FUZZ_BUILD) $(FUZZERS)
	FUZZ_TIME=$(FUZZ_TIME) FUZZ_CAMPAIGN_DIR=$(CURDIR)/$(FUZZ_BUILD)/fuzz-campaign \
	meson test -C $(FUZZ_BUILD) --no-rebuild --print-errorlogs --suite vmig:fuzz \
		--num-processes 1 --timeout-multiplier 0 -v $(FUZZ_TARGETS)

check-quick: all
	meson test -C $(BUILD) --print-errorlogs; python3 scripts/test-summary.py $(BUILD)

demo: all
	python3 scripts/demo.py $(BUILD)

# A guest streaming frames through vfio-user-virtio-net, migrated live.
demo-virtio-net: all
	python3 scripts/demo-virtio-net.py $(BUILD)

# The kernel's mtty device migrated between two vmig processes inside the
# test VM: through iommufd and the legacy container, and over multifd.
demo-kernel: all deps-check
	./tests/vm/run.sh --build $(BUILD) boot mtty-migrate mtty-multifd

bench: all
	./tests/bench/run.sh $(BUILD)

# The test VM with a shell on its serial console; VM_CASES=boot runs cases
# first.  Ctrl-A X quits.
vm-shell: all deps-check
	./tests/vm/run.sh --build $(BUILD) --shell $(VM_CASES)

install: all
	meson install -C $(BUILD)

clean:
	[ ! -d $(BUILD) ] || $(NINJA) -C $(BUILD) clean
	[ ! -d $(SAN_BUILD) ] || $(NINJA) -C $(SAN_BUILD) clean
	[ ! -d $(FUZZ_BUILD) ] || $(NINJA) -C $(FUZZ_BUILD) clean

distclean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD) config.mak
