# SPDX-License-Identifier: GPL-2.0-or-later
# The uart program as an interrupt-driven driver (irq=on): every round
# waits for mtty's receive interrupt, through MSI and through INTx (which
# mtty masks when it fires and vmig unmasks), on the source and, after the
# migration, on the destination.
. /vmig/lib.sh

MTTY_VM="$MTTY_VM,irq=on"
out=
for irq in msi intx; do
    mtty_pair "-$irq" "x-irq=$irq"
    expect "$(dev_prop "src-$irq" x-irq)" $irq "the source's interrupt"
    wait_irqs "src-$irq" 10
    migrate "src-$irq" "dst-$irq" "unix:$RUN/mig-$irq.sock"
    wait_irqs "dst-$irq" $(($(dev_prop "dst-$irq" x-irq-count) + 10))
    verify_ok "dst-$irq"
    out="$out; $irq: $(dev_prop "src-$irq" x-irq-count) on the source,"
    out="$out $(dev_prop "dst-$irq" x-irq-count) on the destination"
    quit "src-$irq" "dst-$irq"
done
pass "interrupts${out}"
