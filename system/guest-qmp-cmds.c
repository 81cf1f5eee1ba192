/*
 * QMP commands of the guest programs (all experimental, "x-"):
 *
 *   x-guest-verify   run the programs' consistency check over all of RAM:
 *                    {ok, pages-checked, bad-pages, first-bad[, detail]
 *                    [, unchecked]}: unchecked lists what could not be
 *                    checked now and why (a stopped device that refuses
 *                    access while the VM is paused).
 *                    A running VM is paused for the check (vCPUs only: no
 *                    STOP/RESUME, the run state stays) and resumed after.
 *   x-query-guest    {program, vcpus, running, passes, pages-written,
 *                    bytes-written, pages-per-second, longest-stall-us,
 *                    programs: [{name, passes, pages-written, bytes-written,
 *                    pages-per-second}], vcpu-stats: [{cpu-index,
 *                    dirty-pages, longest-stall-us, throttle-us}]}.
 *                    pages-per-second is over the last second;
 *                    longest-stall-us is the longest time any vCPU spent
 *                    between two steps (throttle sleeps, pauses, waiting
 *                    for a core) since the vCPUs started, or since the
 *                    last query with "reset-stall": true, which measures
 *                    afresh after its reply.  The figures tell what a
 *                    migration method costs the guest.
 *   x-guest-corrupt  {addr}: a test hook.  Flips every bit of the byte at
 *                    guest physical address addr without logging the
 *                    write, so that tests can prove that x-guest-verify
 *                    (and migration's dirty tracking) catch a bad page.
 *                    A vCPU may rewrite the page afterwards: pause the VM
 *                    or pick a page the program does not write.
 */
#include "qemu/osdep.h"
#include "monitor/qmp.h"
#include "qapi/qapi-types.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/ramblock.h"

void qmp_x_guest_verify(JsonNode **ret, Error **errp)
{
    GuestVerifyResult res = { 0 };
    JsonObject *obj;

    if (!guest_verify(&res, errp)) {
        return;
    }
    obj = json_object_new();
    json_object_set_boolean_member(obj, "ok", res.ok);
    json_object_set_int_member(obj, "pages-checked", res.pages_checked);
    json_object_set_int_member(obj, "bad-pages", res.bad_pages);
    json_object_set_int_member(obj, "first-bad", res.first_bad);
    if (!res.ok) {
        json_object_set_string_member(obj, "detail", res.detail);
    }
    if (res.unchecked) {
        JsonArray *list = json_array_new();

        for (guint i = 0; i < res.unchecked->len; i++) {
            json_array_add_string_element(list,
                g_ptr_array_index(res.unchecked, i));
        }
        json_object_set_array_member(obj, "unchecked", list);
    }
    guest_verify_result_clear(&res);
    *ret = json_node_init_object(json_node_alloc(), obj);
    json_object_unref(obj);
}

/* Per vCPU: {cpu-index, dirty-pages, longest-stall-us, throttle-us}. */
static JsonArray *query_vcpu_stats(uint64_t *longest_stall_ns)
{
    JsonArray *list = json_array_new();
    VCPUStats stats;

    *longest_stall_ns = 0;
    for (unsigned i = 0; vcpu_get_stats(i, &stats); i++) {
        JsonObject *entry = json_object_new();

        json_object_set_int_member(entry, "cpu-index", i);
        json_object_set_int_member(entry, "dirty-pages", stats.dirty_pages);
        json_object_set_int_member(entry, "longest-stall-us",
                                   stats.longest_stall_ns / 1000);
        json_object_set_int_member(entry, "throttle-us",
                                   stats.throttle_ns / 1000);
        json_array_add_object_element(list, entry);
        *longest_stall_ns = MAX(*longest_stall_ns, stats.longest_stall_ns);
    }
    return list;
}

void qmp_x_query_guest(const QapiXQueryGuestArgs *args, JsonNode **ret,
                       Error **errp)
{
    GuestProgramStats total = { .passes = UINT64_MAX };
    uint64_t total_rate = 0, longest_stall_ns;
    JsonArray *list, *vcpu_list;
    JsonObject *obj;
    bool reset_stall = args->has_reset_stall && args->reset_stall;

    list = json_array_new();
    for (unsigned i = 0; i < guest_program_count(); i++) {
        GuestProgram *prog = guest_program_nth(i);
        GuestProgramStats stats = { 0 };
        JsonObject *entry = json_object_new();
        uint64_t rate = guest_program_pages_per_second(i);

        if (prog->set_up) {
            prog->ops->query(prog, &stats);
        }
        json_object_set_string_member(entry, "name",
                                      guest_program_short_name(prog));
        json_object_set_int_member(entry, "passes", stats.passes);
        json_object_set_int_member(entry, "pages-written",
                                   stats.pages_written);
        json_object_set_int_member(entry, "bytes-written",
                                   stats.bytes_written);
        json_object_set_int_member(entry, "pages-per-second", rate);
        json_array_add_object_element(list, entry);

        total.passes = MIN(total.passes, stats.passes);
        total.pages_written += stats.pages_written;
        total.bytes_written += stats.bytes_written;
        total_rate += rate;
    }
    vcpu_list = query_vcpu_stats(&longest_stall_ns);
    if (reset_stall) {
        cpus_reset_stall();
    }

    obj = json_object_new();
    json_object_set_string_member(obj, "program", guest_program_name());
    json_object_set_int_member(obj, "vcpus", cpus_count());
    json_object_set_boolean_member(obj, "running", !all_vcpus_paused());
    json_object_set_int_member(obj, "passes",
                               total.passes == UINT64_MAX ? 0 : total.passes);
    json_object_set_int_member(obj, "pages-written", total.pages_written);
    json_object_set_int_member(obj, "bytes-written", total.bytes_written);
    json_object_set_int_member(obj, "pages-per-second", total_rate);
    json_object_set_int_member(obj, "longest-stall-us",
                               longest_stall_ns / 1000);
    json_object_set_array_member(obj, "programs", list);
    json_object_set_array_member(obj, "vcpu-stats", vcpu_list);
    *ret = json_node_init_object(json_node_alloc(), obj);
    json_object_unref(obj);
}

void qmp_x_guest_corrupt(const QapiXGuestCorruptArgs *args, JsonNode **ret,
                         Error **errp)
{
    int64_t addr = args->addr;
    uint8_t *p;

    if (addr < 0) {
        error_setg(errp, "x-guest-corrupt: address %" PRId64 " is negative",
                   addr);
        return;
    }
    p = guest_ram_ptr(addr, 1);
    if (!p) {
        error_setg(errp, "x-guest-corrupt: address 0x%" PRIx64 " is not "
                   "guest RAM", (uint64_t)addr);
        return;
    }
    /* Deliberately not logged: that is the point of the hook. */
    __atomic_fetch_xor(p, 0xff, __ATOMIC_SEQ_CST);
}
