/*
 * Runs the fuzz target's entry point without libFuzzer: over every file
 * of the corpus directories given, then over a fixed number of
 * deterministic mutations of them (bit flips, byte stores, splices,
 * truncations), printing TAP.  It runs in every build (also under ASan
 * and UBSan), so the decoder's bounds checks are exercised even where
 * clang's libFuzzer is not available.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_decoder_cleanup(void);

#define MAX_INPUTS    256
#define MAX_INPUT_LEN (256 * 1024)
#define MUTATION_ROUNDS 20000
#define ROUNDS_PER_TAP  2500

typedef struct Input {
    uint8_t *data;
    size_t len;
    char *name;
} Input;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int load_dir(const char *dir, Input *inputs, int n)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d) {
        printf("Bail out! cannot open corpus directory %s\n", dir);
        exit(1);
    }
    while ((de = readdir(d)) && n < MAX_INPUTS) {
        char path[4096];
        FILE *f;
        long len;

        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        f = fopen(path, "rb");
        if (!f) {
            continue;
        }
        if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
            len <= MAX_INPUT_LEN && fseek(f, 0, SEEK_SET) == 0) {
            inputs[n].data = malloc(len ? len : 1);
            if (inputs[n].data &&
                fread(inputs[n].data, 1, len, f) == (size_t)len) {
                inputs[n].len = len;
                inputs[n].name = strdup(de->d_name);
                n++;
            } else {
                free(inputs[n].data);
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static int cmp_input(const void *a, const void *b)
{
    return strcmp(((const Input *)a)->name, ((const Input *)b)->name);
}

static void mutate_and_run(const Input *inputs, int n)
{
    const Input *in = &inputs[rng() % n];
    size_t cap = in->len * 2 + 64;
    uint8_t *buf = malloc(cap);
    size_t len = in->len;
    int edits = 1 + rng() % 8;

    memcpy(buf, in->data, in->len);
    for (int e = 0; e < edits && len; e++) {
        size_t at = rng() % len;

        switch (rng() % 5) {
        case 0:
            buf[at] ^= 1u << (rng() % 8);
            break;
        case 1: {
            static const uint8_t interesting[] = { 0, 1, 0x7f, 0x80, 0xff,
                                                   16, 24, 32, 64 };
            buf[at] = interesting[rng() % sizeof(interesting)];
            break;
        }
        case 2:
            len = at + 1;
            break;
        case 3: {
            const Input *other = &inputs[rng() % n];
            size_t take = other->len ? rng() % other->len : 0;

            take = take > cap - at ? cap - at : take;
            memcpy(buf + at, other->data, take);
            if (at + take > len) {
                len = at + take;
            }
            break;
        }
        default:
            memset(buf + at, 0xff, len - at < 4 ? len - at : 4);
            break;
        }
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
}

int main(int argc, char **argv)
{
    static Input inputs[MAX_INPUTS];
    int n = 0, test = 0;

    for (int i = 1; i < argc; i++) {
        n = load_dir(argv[i], inputs, n);
    }
    if (!n) {
        printf("Bail out! empty corpus\n");
        return 1;
    }
    qsort(inputs, n, sizeof(inputs[0]), cmp_input);
    for (int i = 0; i < n; i++) {
        LLVMFuzzerTestOneInput(inputs[i].data, inputs[i].len);
        printf("ok %d - corpus %s\n", ++test, inputs[i].name);
    }
    for (int r = 0; r < MUTATION_ROUNDS; r++) {
        mutate_and_run(inputs, n);
        if ((r + 1) % ROUNDS_PER_TAP == 0) {
            printf("ok %d - mutations %d-%d\n", ++test, r + 2 - ROUNDS_PER_TAP,
                   r + 1);
        }
    }
    printf("1..%d\n", test);
    for (int i = 0; i < n; i++) {
        free(inputs[i].data);
        free(inputs[i].name);
    }
    fuzz_decoder_cleanup();
    return 0;
}
