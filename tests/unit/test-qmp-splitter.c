/*
 * Unit tests of the QMP stream splitter (monitor/json-splitter.c).
 */
#include "qemu/osdep.h"
#include "monitor/monitor-internal.h"

/* What the splitter produced: each text as is, each error as "!error". */
typedef struct Collected {
    GPtrArray *items;
} Collected;

static void collect(void *opaque, const char *msg, size_t len,
                    const char *error)
{
    Collected *c = opaque;

    if (error) {
        g_assert_null(msg);
        g_ptr_array_add(c->items, g_strdup_printf("!%s", error));
    } else {
        g_assert_nonnull(msg);
        g_assert_cmpint(msg[len], ==, '\0');
        g_ptr_array_add(c->items, g_strndup(msg, len));
    }
}

/* Feed @input in pieces cut at @cuts (ascending offsets), then compare. */
static void check_split(const char *input, const size_t *cuts, size_t ncuts,
                        const char *const *expected, size_t max_size)
{
    Collected c = { .items = g_ptr_array_new_with_free_func(g_free) };
    JsonSplitter *js = json_splitter_new(max_size, collect, &c);
    size_t len = strlen(input), pos = 0;

    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        json_splitter_feed(js, input + pos, end - pos);
        pos = end;
    }
    for (size_t i = 0; expected[i]; i++) {
        if (i >= c.items->len) {
            g_error("missing item %zu '%s' (input '%s')", i, expected[i], input);
        }
        g_assert_cmpstr(g_ptr_array_index(c.items, i), ==, expected[i]);
    }
    g_assert_cmpuint(c.items->len, ==, g_strv_length((char **)expected));
    json_splitter_free(js);
    g_ptr_array_free(c.items, TRUE);
}

static void check_whole(const char *input, const char *const *expected)
{
    check_split(input, NULL, 0, expected, QMP_MAX_MESSAGE_SIZE);
}

static void test_single_and_several(void)
{
    check_whole("{\"execute\": \"qmp_capabilities\"}",
                (const char *const[]){ "{\"execute\": \"qmp_capabilities\"}",
                                       NULL });
    check_whole("  \r\n{\"a\":1}{\"b\":2}\n\t{\"c\":[1,{\"d\":{}}]}\r\n",
                (const char *const[]){ "{\"a\":1}", "{\"b\":2}",
                                       "{\"c\":[1,{\"d\":{}}]}", NULL });
    check_whole("[1,[2,[3]]] {}",
                (const char *const[]){ "[1,[2,[3]]]", "{}", NULL });
    /* Whitespace alone is no message. */
    check_whole(" \r\n\t \n", (const char *const[]){ NULL });
}

static void test_strings_hide_structure(void)
{
    check_whole("{\"s\": \"}{][\"}{\"t\":1}",
                (const char *const[]){ "{\"s\": \"}{][\"}", "{\"t\":1}", NULL });
    /* Escaped quote and escaped backslash before the closing quote. */
    check_whole("{\"s\": \"a\\\"}\\\\\"}{}",
                (const char *const[]){ "{\"s\": \"a\\\"}\\\\\"}", "{}", NULL });
    check_whole("{\"u\": \"\\u007d\\/\\n\"}",
                (const char *const[]){ "{\"u\": \"\\u007d\\/\\n\"}", NULL });
    /* A key may hold braces too. */
    check_whole("{\"{\": {\"}\": \"[\"}}",
                (const char *const[]){ "{\"{\": {\"}\": \"[\"}}", NULL });
}

static void test_garbage_between_messages(void)
{
    check_whole("{\"a\":1} xyz {\"b\":2} 42 [1]",
                (const char *const[]){ "{\"a\":1}", "xyz", "{\"b\":2}", "42",
                                       "[1]", NULL });
    /* Garbage glued to a message ends where the message starts. */
    check_whole("oops{\"a\":1}",
                (const char *const[]){ "oops", "{\"a\":1}", NULL });
    /* A stray closing brace is handed on, to be refused by the parser. */
    check_whole("} {\"a\":1}",
                (const char *const[]){ "}", "{\"a\":1}", NULL });
    /* A top-level string may contain spaces and braces. */
    check_whole("\"a {b} c\" {}",
                (const char *const[]){ "\"a {b} c\"", "{}", NULL });
}

static void test_unterminated_string_resyncs(void)
{
    const char *in = "{\"execute\": \"stop\n{\"execute\": \"cont\"}";
    Collected c = { .items = g_ptr_array_new_with_free_func(g_free) };
    JsonSplitter *js = json_splitter_new(QMP_MAX_MESSAGE_SIZE, collect, &c);

    json_splitter_feed(js, in, strlen(in));
    g_assert_cmpuint(c.items->len, ==, 2);
    g_assert_true(g_str_has_prefix(g_ptr_array_index(c.items, 0), "!"));
    g_assert_nonnull(strstr(g_ptr_array_index(c.items, 0), "unterminated"));
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "{\"execute\": \"cont\"}");
    json_splitter_free(js);
    g_ptr_array_free(c.items, TRUE);
}

/* Is item @i an error mentioning @needle? */
static void assert_error_item(Collected *c, guint i, const char *needle)
{
    const char *item = g_ptr_array_index(c->items, i);

    g_assert_true(g_str_has_prefix(item, "!"));
    if (!strstr(item, needle)) {
        g_error("error '%s' does not mention '%s'", item, needle);
    }
}

/* Collect everything @input gives, whole and byte by byte: the same. */
static Collected collect_all(const char *input, size_t len)
{
    Collected whole = { .items = g_ptr_array_new_with_free_func(g_free) };
    Collected bytes = { .items = g_ptr_array_new_with_free_func(g_free) };
    JsonSplitter *js = json_splitter_new(QMP_MAX_MESSAGE_SIZE, collect, &whole);
    JsonSplitter *js2 = json_splitter_new(QMP_MAX_MESSAGE_SIZE, collect, &bytes);

    json_splitter_feed(js, input, len);
    for (size_t i = 0; i < len; i++) {
        json_splitter_feed(js2, input + i, 1);
    }
    g_assert_cmpuint(whole.items->len, ==, bytes.items->len);
    for (guint i = 0; i < whole.items->len; i++) {
        g_assert_cmpstr(g_ptr_array_index(whole.items, i), ==,
                        g_ptr_array_index(bytes.items, i));
    }
    g_assert_cmpuint(json_splitter_pending(js), ==,
                     json_splitter_pending(js2));
    json_splitter_free(js);
    json_splitter_free(js2);
    g_ptr_array_free(bytes.items, TRUE);
    return whole;
}

/*
 * An unbalanced '{' must not make the stream deaf: the next message's
 * '{' cannot follow a member value, so the broken text ends there with
 * an error and the next message is whole.
 */
static void test_unbalanced_resyncs(void)
{
    const char *in = "{\"execute\":\"cont\"\n{\"execute\":\"query-status\"}\n"
                     "{\"execute\":\"query-status\"}";
    Collected c = collect_all(in, strlen(in));

    g_assert_cmpuint(c.items->len, ==, 3);
    assert_error_item(&c, 0, "unexpected '{' where ',' or '}' after an "
                      "object member was expected");
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==,
                    "{\"execute\":\"query-status\"}");
    g_assert_cmpstr(g_ptr_array_index(c.items, 2), ==,
                    "{\"execute\":\"query-status\"}");
    g_ptr_array_free(c.items, TRUE);

    /* Cut off inside a nested object, or after a key. */
    in = "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/m\"\n"
         "{\"id\":1} {\"a\" {\"b\":[1,2]}";
    c = collect_all(in, strlen(in));
    g_assert_cmpuint(c.items->len, ==, 4);
    assert_error_item(&c, 0, "unexpected '{'");
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "{\"id\":1}");
    assert_error_item(&c, 2, "where ':' after the member name was expected");
    g_assert_cmpstr(g_ptr_array_index(c.items, 3), ==, "{\"b\":[1,2]}");
    g_ptr_array_free(c.items, TRUE);

    /* Inside an array, after an element. */
    in = "[1, [2, 3] {}";
    c = collect_all(in, strlen(in));
    g_assert_cmpuint(c.items->len, ==, 2);
    assert_error_item(&c, 0, "',' or ']' after an array element");
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "{}");
    g_ptr_array_free(c.items, TRUE);
}

/*
 * Other tokens that cannot follow: one error, the rest of the broken text
 * (to where its brackets close, or to the end of its line) goes with it.
 */
static void test_grammar_errors(void)
{
    static const struct {
        const char *in;
        const char *error;
    } cases[] = {
        { "{\"a\":1 \"b\":2}", "unexpected '\"'" },
        { "{1:2}", "where a member name in quotes or '}' was" },
        { "{\"a\"::1}", "unexpected ':' where a value" },
        { "[1,,2]", "unexpected ','" },
        { "{\"a\":1]", "unexpected ']'" },
        { "[1}", "unexpected '}'" },
        { "{\"a\",1}", "unexpected ','" },
        { "[\"x\":1]", "unexpected ':'" },
        { "{\"a\":[1,]}", "unexpected ']' where a value was" },
        { "{\"a\":{\"b\" 1, \"c\": {\"d\": \"}\"}}}", "unexpected '1'" },
        { "{\"a\" 1, [{\n", "unexpected '1'" },
        { "{\"a\":1,}", "unexpected '}'" },
        { "{\"a\":\x01 \x02}", "unexpected byte 0x02" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *in = g_strconcat(cases[i].in, "{\"ok\":1}", NULL);
        Collected c = collect_all(in, strlen(in));

        g_assert_cmpuint(c.items->len, ==, 2);
        assert_error_item(&c, 0, cases[i].error);
        g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "{\"ok\":1}");
        g_ptr_array_free(c.items, TRUE);
    }
}

/* Newlines are whitespace: a message may span lines, and every value kind. */
static void test_multi_line_and_values(void)
{
    const char *in = "{\n  \"execute\"\n  :\r\n  \"qom-set\" ,\n"
                     "  \"arguments\": {\"a\": [ true, false, null, -1.5e3,\n"
                     "  {}, [], \"s\" ], \"b\":0}\n}\n[\n]\n";
    Collected c = collect_all(in, strlen(in));

    g_assert_cmpuint(c.items->len, ==, 2);
    g_assert_cmpuint(strlen(g_ptr_array_index(c.items, 0)), ==,
                     strstr(in, "}\n[") + 1 - in);
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "[\n]");
    g_ptr_array_free(c.items, TRUE);

    /* Scalars end at any delimiter; their spelling is the parser's. */
    in = "{\"a\":tru}{\"b\":12\"c\"}\n";
    c = collect_all(in, strlen(in));
    g_assert_cmpuint(c.items->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(c.items, 0), ==, "{\"a\":tru}");
    assert_error_item(&c, 1, "unexpected '\"'");
    g_ptr_array_free(c.items, TRUE);
}

/* A 0xff byte is the client's parser reset: the partial text is dropped. */
static void test_0xff_resets(void)
{
    static const char in[] = "{\"execute\": \"qom-get\", \"arguments\": "
                             "{\"path\": \"/ma\xff{\"execute\":\"stop\"}"
                             "[1, {\xff\xff  {\"a\":1}";
    Collected c = collect_all(in, sizeof(in) - 1);

    g_assert_cmpuint(c.items->len, ==, 5);
    assert_error_item(&c, 0, "0xff, the partial message before it is "
                      "discarded");
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==,
                    "{\"execute\":\"stop\"}");
    assert_error_item(&c, 2, "0xff, the partial message");
    assert_error_item(&c, 3, "stray byte 0xff");
    g_assert_cmpstr(g_ptr_array_index(c.items, 4), ==, "{\"a\":1}");
    g_ptr_array_free(c.items, TRUE);

    /* Nothing is held after a reset. */
    c = collect_all("{\"a\": [1, 2\xff", 13);
    g_assert_cmpuint(c.items->len, ==, 1);
    g_ptr_array_free(c.items, TRUE);
}

/* Every way of cutting a stream in two, and byte by byte, gives the same. */
static void test_every_boundary(void)
{
    static const char *const samples[] = {
        "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/m{a}\", "
        "\"property\": \"x\\\"y\"}, \"id\": [1, {\"k\": \"}\"}]}",
        "{\"execute\":\"qmp_capabilities\"}\r\n",
        "  [\"\\\\\", \"\\\"\"]\n",
        "{}",
    };
    GString *stream = g_string_new(NULL);
    g_autoptr(GPtrArray) expected = g_ptr_array_new_with_free_func(g_free);

    for (size_t i = 0; i < ARRAY_SIZE(samples); i++) {
        g_string_append(stream, samples[i]);
        g_ptr_array_add(expected, g_strstrip(g_strdup(samples[i])));
    }
    g_ptr_array_add(expected, NULL);

    for (size_t cut = 0; cut <= stream->len; cut++) {
        check_split(stream->str, &cut, 1,
                    (const char *const *)expected->pdata, QMP_MAX_MESSAGE_SIZE);
    }
    for (size_t cut = 1; cut < stream->len; cut++) {
        size_t cuts[2] = { cut / 2, cut };
        check_split(stream->str, cuts, 2,
                    (const char *const *)expected->pdata, QMP_MAX_MESSAGE_SIZE);
    }
    {
        g_autofree size_t *cuts = g_new(size_t, stream->len);
        for (size_t i = 0; i < stream->len; i++) {
            cuts[i] = i;
        }
        check_split(stream->str, cuts, stream->len,
                    (const char *const *)expected->pdata, QMP_MAX_MESSAGE_SIZE);
    }
    g_string_free(stream, TRUE);
}

static void test_oversized_is_skipped(void)
{
    Collected c = { .items = g_ptr_array_new_with_free_func(g_free) };
    JsonSplitter *js = json_splitter_new(64, collect, &c);
    GString *big = g_string_new("{\"pad\": \"");

    for (int i = 0; i < 200; i++) {
        g_string_append(big, "}{");
    }
    g_string_append(big, "\", \"more\": {\"x\": [1,2]}}");
    /* Fed in small pieces: the limit holds across reads. */
    for (size_t pos = 0; pos < big->len; pos += 7) {
        json_splitter_feed(js, big->str + pos, MIN(7, big->len - pos));
    }
    g_assert_cmpuint(c.items->len, ==, 1);
    g_assert_true(g_str_has_prefix(g_ptr_array_index(c.items, 0), "!"));
    g_assert_nonnull(strstr(g_ptr_array_index(c.items, 0), "too large"));
    g_assert_cmpuint(json_splitter_pending(js), ==, 0);

    /* Back in step right after the oversized message. */
    json_splitter_feed(js, "{\"ok\":true}", 11);
    g_assert_cmpuint(c.items->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "{\"ok\":true}");

    /* Exactly at the limit is still fine. */
    g_string_assign(big, "{\"s\":\"");
    while (big->len < 62) {
        g_string_append_c(big, 'x');
    }
    g_string_append(big, "\"}");
    g_assert_cmpuint(big->len, ==, 64);
    json_splitter_feed(js, big->str, big->len);
    g_assert_cmpuint(c.items->len, ==, 3);
    g_assert_cmpstr(g_ptr_array_index(c.items, 2), ==, big->str);

    /* Oversized garbage is reported too, then skipped to its end. */
    g_string_assign(big, "");
    for (int i = 0; i < 100; i++) {
        g_string_append_c(big, 'z');
    }
    g_string_append(big, " {}");
    json_splitter_feed(js, big->str, big->len);
    g_assert_cmpuint(c.items->len, ==, 5);
    g_assert_true(g_str_has_prefix(g_ptr_array_index(c.items, 3), "!"));
    g_assert_cmpstr(g_ptr_array_index(c.items, 4), ==, "{}");

    g_string_free(big, TRUE);
    json_splitter_free(js);
    g_ptr_array_free(c.items, TRUE);
}

static void test_nesting_limit(void)
{
    Collected c = { .items = g_ptr_array_new_with_free_func(g_free) };
    JsonSplitter *js = json_splitter_new(QMP_MAX_MESSAGE_SIZE, collect, &c);
    GString *deep = g_string_new(NULL);

    for (int i = 0; i < QMP_MAX_NESTING + 10; i++) {
        g_string_append_c(deep, '[');
    }
    for (int i = 0; i < QMP_MAX_NESTING + 10; i++) {
        g_string_append_c(deep, ']');
    }
    g_string_append(deep, "{\"after\":1}");
    json_splitter_feed(js, deep->str, deep->len);
    g_assert_cmpuint(c.items->len, ==, 2);
    g_assert_nonnull(strstr(g_ptr_array_index(c.items, 0), "nested"));
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "{\"after\":1}");

    /* The deepest allowed nesting passes whole. */
    g_string_truncate(deep, 0);
    for (int i = 0; i < QMP_MAX_NESTING; i++) {
        g_string_append_c(deep, '[');
    }
    for (int i = 0; i < QMP_MAX_NESTING; i++) {
        g_string_append_c(deep, ']');
    }
    json_splitter_feed(js, deep->str, deep->len);
    g_assert_cmpuint(c.items->len, ==, 3);
    g_assert_cmpstr(g_ptr_array_index(c.items, 2), ==, deep->str);

    g_string_free(deep, TRUE);
    json_splitter_free(js);
    g_ptr_array_free(c.items, TRUE);
}

static void test_pending(void)
{
    Collected c = { .items = g_ptr_array_new_with_free_func(g_free) };
    JsonSplitter *js = json_splitter_new(QMP_MAX_MESSAGE_SIZE, collect, &c);

    json_splitter_feed(js, "  {\"a\": ", 8);
    g_assert_cmpuint(json_splitter_pending(js), ==, 6);
    g_assert_cmpuint(c.items->len, ==, 0);
    json_splitter_feed(js, "1}  ", 4);
    g_assert_cmpuint(json_splitter_pending(js), ==, 0);
    g_assert_cmpuint(c.items->len, ==, 1);
    /* Embedded NUL bytes are passed on; the parser will refuse them. */
    json_splitter_feed(js, "{\"a\":\0}", 7);
    g_assert_cmpuint(c.items->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(c.items, 1), ==, "{\"a\":");
    json_splitter_free(js);
    g_ptr_array_free(c.items, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/splitter/single-and-several", test_single_and_several);
    g_test_add_func("/qmp/splitter/strings-hide-structure",
                    test_strings_hide_structure);
    g_test_add_func("/qmp/splitter/garbage", test_garbage_between_messages);
    g_test_add_func("/qmp/splitter/unterminated-string",
                    test_unterminated_string_resyncs);
    g_test_add_func("/qmp/splitter/unbalanced-resyncs", test_unbalanced_resyncs);
    g_test_add_func("/qmp/splitter/grammar-errors", test_grammar_errors);
    g_test_add_func("/qmp/splitter/multi-line", test_multi_line_and_values);
    g_test_add_func("/qmp/splitter/0xff-resets", test_0xff_resets);
    g_test_add_func("/qmp/splitter/every-boundary", test_every_boundary);
    g_test_add_func("/qmp/splitter/oversized", test_oversized_is_skipped);
    g_test_add_func("/qmp/splitter/nesting-limit", test_nesting_limit);
    g_test_add_func("/qmp/splitter/pending", test_pending);
    return g_test_run();
}
