/*
 * Test helper for ProcessMemoryTest (never part of the product): maps SIZE bytes, fills them
 * with a pattern derived from SEED, prints the address, and waits until stdin closes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static uint8_t pattern(uint64_t seed, uint64_t i) {
    uint64_t x = i * 0x9E3779B97F4A7C15ULL + seed;
    x ^= x >> 29;
    return (uint8_t) x;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SIZE SEED\n", argv[0]);
        return 2;
    }
    size_t size = strtoull(argv[1], NULL, 10);
    uint64_t seed = strtoull(argv[2], NULL, 10);
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (size_t i = 0; i < size; i++) {
        p[i] = pattern(seed, i);
    }
    printf("addr %lu\n", (unsigned long) (uintptr_t) p);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
}
