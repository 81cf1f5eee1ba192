# SPDX-License-Identifier: GPL-2.0-or-later
# vfio-pci on a real PCI function: QEMU's edu device behind the guest's
# Intel IOMMU, bound to the kernel's vfio-pci by /init.  Over both
# back-ends, the edu program checks edu's identity and liveness registers
# and raises, takes and acknowledges its interrupt, through MSI and INTx.
# Its BAR0 is mapped into vmig and the accesses go through the mapping
# (with x-no-mmap=on, through pread/pwrite and no mapping at all).  edu
# has no VFIO migration: migrate is refused, naming that.
# IOMMU_GET_HW_INFO names the IOMMU; a dirty-tracking HWPT is used only
# where it offers dirty tracking, and one asked for anyway
# (x-iommufd-dirty-hwpt=on) is refused by the kernel where it does not,
# and by vmig on the legacy back-end.
. /vmig/lib.sh

[ -n "${VMIG_EDU:-}" ] || fail "/init found no edu device to bind to vfio-pci"
dev=/sys/bus/pci/devices/$VMIG_EDU
driver=$(basename "$(readlink "$dev/driver")")
expect "$driver" vfio-pci "the driver of edu ($VMIG_EDU)"
[ -L "$dev/iommu_group" ] || fail "edu ($VMIG_EDU) has no IOMMU group"
group=$(basename "$(readlink "$dev/iommu_group")")
[ -c "/dev/vfio/$group" ] || fail "/dev/vfio/$group (edu's group) is missing"

EDU_VM="-m 64M -smp 1 -guest edu,irq=on"

# edu_run NAME BACKEND IRQ [OPTIONS]: a VM driving edu through BACKEND and
# IRQ; checks the interrupts, the mapping and the migration blocker.
edu_run() {
    _vm=$1
    # shellcheck disable=SC2086 # $EDU_VM is a list of words
    start_vmig "$_vm" $EDU_VM -trace vfio_iommufd_attach \
        -device "vfio-pci,host=$VMIG_EDU,id=dev0,x-iommu-backend=$2,x-irq=$3${4:+,$4}"
    expect "$(dev_prop "$_vm" x-iommu-backend)" "$2" "$_vm: the back-end"
    expect "$(dev_prop "$_vm" x-irq)" "$3" "$_vm: the interrupt"
    wait_irqs "$_vm" 20
    verify_ok "$_vm"
    _acc=$(dev_prop "$_vm" x-mmap-accesses)
    _maps=$(grep -c vfio "/proc/$(cat "$RUN/$_vm.pid")/maps" || true)
    case "${4:-}" in
    *x-no-mmap=on*)
        [ "$_acc" -eq 0 ] || fail "$_vm: $_acc accesses through a mapping"
        [ "$_maps" -eq 0 ] || fail "$_vm: the device is mapped"
        ;;
    *)
        [ "$_acc" -gt 0 ] || fail "$_vm: no access went through BAR0's mapping"
        [ "$_maps" -gt 0 ] || fail "$_vm: no mapping of the device in its maps"
        ;;
    esac
    if _err=$(qmp "$_vm" migrate '{"uri": "unix:/tmp/run/none.sock"}' 2>&1); then
        fail "$_vm: migrate was accepted"
    fi
    case "$_err" in
    *"has no VFIO migration support"*) ;;
    *) fail "$_vm: migrate refused with '$_err'" ;;
    esac
    out="$out; $_vm: $(dev_prop "$_vm" x-irq-count) irqs, $_acc mmap accesses"
    quit "$_vm"
}

out=
edu_run iommufd-msi iommufd msi
edu_run iommufd-intx iommufd intx
edu_run legacy-msi legacy msi
edu_run legacy-intx legacy intx
edu_run no-mmap iommufd msi x-no-mmap=on

# What the IOMMU says, and what vmig made of it.
start_vmig info $EDU_VM -trace vfio_iommufd_attach \
    -device "vfio-pci,host=$VMIG_EDU,id=dev0,x-iommu-backend=iommufd"
hw=$(dev_prop info x-iommu-hw-info)
quit info
case "$hw" in
intel-vtd,*) ;;
*) fail "IOMMU_GET_HW_INFO of edu: '$hw', expected intel-vtd" ;;
esac
caps=$((${hw##*capabilities } & 1))
if [ "$caps" = 0 ]; then
    grep -q "attached to the IOAS, no dirty tracking" "$RUN/info.log" ||
        fail "edu over iommufd: no trace of the attach to the IOAS"
    # shellcheck disable=SC2086 # $EDU_VM is a list of words
    if timeout 30 vmig $EDU_VM -device \
        "vfio-pci,host=$VMIG_EDU,id=dev0,x-iommu-backend=iommufd,x-iommufd-dirty-hwpt=on" \
        >"$RUN/hwpt-on.log" 2>&1 </dev/null; then
        fail "x-iommufd-dirty-hwpt=on: accepted by an IOMMU without dirty tracking"
    fi
    grep -q "x-iommufd-dirty-hwpt=on.*HWPT with dirty tracking.*not supported" \
        "$RUN/hwpt-on.log" ||
        fail "x-iommufd-dirty-hwpt=on: $(tail -n 1 "$RUN/hwpt-on.log")"
    hwpt="a dirty-tracking HWPT is refused"
else
    grep -q "attached to a dirty-tracking HWPT" "$RUN/info.log" ||
        fail "edu over iommufd: the IOMMU offers dirty tracking, no HWPT has it"
    hwpt="a dirty-tracking HWPT is used"
fi

# shellcheck disable=SC2086 # $EDU_VM is a list of words
if timeout 30 vmig $EDU_VM -device \
    "vfio-pci,host=$VMIG_EDU,id=dev0,x-iommu-backend=legacy,x-iommufd-dirty-hwpt=on" \
    >"$RUN/hwpt-legacy.log" 2>&1 </dev/null; then
    fail "x-iommufd-dirty-hwpt=on: accepted with the legacy back-end"
fi
grep -q "x-iommufd-dirty-hwpt=on needs the iommufd back-end" \
    "$RUN/hwpt-legacy.log" ||
    fail "x-iommufd-dirty-hwpt=on, legacy: $(tail -n 1 "$RUN/hwpt-legacy.log")"

# An mdev sits behind no IOMMU of its own: nothing to report.
# shellcheck disable=SC2086 # $MTTY_VM is a list of words
start_vmig mtty $MTTY_VM -device "vfio-pci,sysfsdev=$MTTY_SRC,id=dev0,x-iommu-backend=iommufd"
mhw=$(dev_prop mtty x-iommu-hw-info)
quit mtty
case "$mhw" in
unavailable*) ;;
*) fail "IOMMU_GET_HW_INFO of an mtty: '$mhw', expected none" ;;
esac
pass "edu $VMIG_EDU (group $group)$out; IOMMU: $hw, $hwpt"
