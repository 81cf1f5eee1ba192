/*
 * vmig: a QEMU-style VMM built around live migration.
 */
#include "qemu/osdep.h"
#include "system/vl.h"

int main(int argc, char **argv)
{
    return vl_main(argc, argv);
}
