/*
 * Test helper for PageFaultHandlerTest (never part of the product): plays Firecracker's part.
 * Creates a userfaultfd, maps anonymous memory and registers it (missing mode), connects to
 * the handler's socket and sends the region list as JSON with the uffd as SCM_RIGHTS, then
 * touches pages from several threads and checks every byte against the image file.
 *
 *   fake_vmm SOCKET IMAGE SIZE THREADS TOUCHES SEED BADPAGE [TIMING]
 *
 * With FAKE_VMM_WP=1 in the environment it registers write-protect mode too (for dirty
 * tracking), and after the touches writes a pattern into pages 10..19 (read first) and 30..39,
 * prints "paused", and waits for a line on stdin before checking its writes and going on.
 *
 * With FAKE_VMM_HUGE=1 the memory is 2 MiB huge pages (MAP_HUGETLB; exits 5 if none can be
 * had) and the regions say so.
 *
 * With TIMING=1 it also times each page's first touch (the fault, end to end, as the guest
 * sees it) and prints "latency_ns n=... mean=... p50=... p99=... max=...".
 * BADPAGE (-1 for none): a page whose fault the handler must answer with SIGBUS.
 * Prints one line "touched=N mismatches=M shared_ok=1 remove_zero=1 sigbus=S" and exits 0
 * when every check held.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static uint8_t *mem, *image;
static size_t size;
static int touches;
static uint64_t seed;
static long badpage;
static pthread_barrier_t barrier;
static long mismatches, touched;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread sigjmp_buf jump;
static __thread volatile int armed;
static volatile int sigbus_seen;
static int timing;
static size_t hp = PAGE; /* the memory's page size: 4 KiB, or 2 MiB with FAKE_VMM_HUGE */
static uint8_t *first_touch; /* one flag per page: 0 until some thread touched it */
static uint64_t *lat;         /* first-touch latencies, ns */
static long nlat;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static void on_sigbus(int sig) {
    (void) sig;
    if (armed) {
        sigbus_seen = 1;
        siglongjmp(jump, 1);
    }
    _exit(99);
}

static uint64_t next(uint64_t *s) {
    *s += 0x9E3779B97F4A7C15ULL;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void check_page(size_t p) {
    if (timing && __atomic_exchange_n(&first_touch[p], 1, __ATOMIC_ACQ_REL) == 0) {
        uint64_t t0 = now_ns();
        volatile uint8_t v = mem[p * PAGE];
        (void) v;
        uint64_t dt = now_ns() - t0;
        long i = __atomic_fetch_add(&nlat, 1, __ATOMIC_RELAXED);
        lat[i] = dt;
    }
    long bad = 0;
    for (size_t i = 0; i < PAGE; i++) {
        if (mem[p * PAGE + i] != image[p * PAGE + i]) {
            bad++;
        }
    }
    pthread_mutex_lock(&mu);
    mismatches += bad;
    touched++;
    pthread_mutex_unlock(&mu);
}

static void *toucher(void *arg) {
    uint64_t s = seed + (uintptr_t) arg * 7919;
    size_t pages = size / PAGE;
    /* Every thread faults the same first pages at once. */
    pthread_barrier_wait(&barrier);
    for (size_t p = 0; p < 4; p++) {
        check_page(p);
    }
    for (int i = 0; i < touches; i++) {
        size_t p = next(&s) % pages;
        if ((long) p == badpage || p * PAGE >= size - hp) {
            continue;
        }
        check_page(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s SOCKET IMAGE SIZE THREADS TOUCHES SEED BADPAGE [TIMING]\n", argv[0]);
        return 2;
    }
    size = strtoull(argv[3], NULL, 10);
    int threads = atoi(argv[4]);
    touches = atoi(argv[5]);
    seed = strtoull(argv[6], NULL, 10);
    badpage = atol(argv[7]);
    timing = argc == 9 && atoi(argv[8]) == 1;
    first_touch = calloc(size / PAGE, 1);
    lat = calloc(size / PAGE + 1, sizeof *lat);

    image = malloc(size);
    int ifd = open(argv[2], O_RDONLY);
    if (ifd < 0 || read(ifd, image, size) != (ssize_t) size) {
        perror("image");
        return 1;
    }
    close(ifd);

    int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) {
        perror("userfaultfd");
        return 1;
    }
    const char *huge_env = getenv("FAKE_VMM_HUGE");
    int huge = huge_env && huge_env[0] == '1';
    if (huge) {
        hp = 2 << 20;
    }
    const char *wp_env = getenv("FAKE_VMM_WP");
    int wp = wp_env && wp_env[0] == '1';
    struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_THREAD_ID |
                                                          (wp ? UFFD_FEATURE_PAGEFAULT_FLAG_WP : 0) |
                                                          (huge ? UFFD_FEATURE_MISSING_HUGETLBFS : 0)};
    if (ioctl(uffd, UFFDIO_API, &api) < 0) {
        perror("UFFDIO_API");
        return 1;
    }
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : 0), -1, 0);
    if (huge && mem == MAP_FAILED) {
        perror("mmap MAP_HUGETLB");
        return 5;
    }
    struct uffdio_register reg = {.range = {.start = (uintptr_t) mem, .len = size},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING | (wp ? UFFDIO_REGISTER_MODE_WP : 0)};
    if (mem == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        perror("register");
        return 1;
    }

    int sock = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    if (connect(sock, (struct sockaddr *) &addr, sizeof addr) < 0) {
        perror("connect");
        return 1;
    }
    char json[512];
    int len = snprintf(json, sizeof json,
                       "[{\"base_host_virt_addr\": %lu, \"size\": %zu, \"offset\": 0, \"page_size\": %zu}]",
                       (unsigned long) (uintptr_t) mem, size, hp);
    struct iovec iov = {.iov_base = json, .iov_len = len};
    char control[CMSG_SPACE(sizeof(int))] = {0};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &uffd, sizeof(int));
    if (sendmsg(sock, &msg, 0) < 0) {
        perror("sendmsg");
        return 1;
    }

    struct sigaction sa = {.sa_handler = on_sigbus};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);

    pthread_barrier_init(&barrier, NULL, threads);
    pthread_t t[64];
    for (int i = 0; i < threads && i < 64; i++) {
        pthread_create(&t[i], NULL, toucher, (void *) (uintptr_t) i);
    }
    for (int i = 0; i < threads && i < 64; i++) {
        pthread_join(t[i], NULL);
    }

    int writes_ok = 1;
    if (wp) {
        for (size_t p = 10; p < 20; p++) {
            check_page(p); /* read first: installed write-protected */
        }
        for (size_t p = 10; p < 40; p++) {
            if (p >= 20 && p < 30) {
                continue;
            }
            for (size_t i = 0; i < PAGE; i++) {
                mem[p * PAGE + i] = (uint8_t) (p * 7 + i);
            }
        }
        printf("paused\n");
        fflush(stdout);
        char line[16];
        if (fgets(line, sizeof line, stdin) == NULL) {
            return 4;
        }
        for (size_t p = 10; p < 40; p++) {
            for (size_t i = 0; p < 20 || p >= 30 ? i < PAGE : 0; i++) {
                if (mem[p * PAGE + i] != (uint8_t) (p * 7 + i)) {
                    writes_ok = 0;
                }
            }
        }
    }

    /* A removed page must come back as zeros, not as the image's bytes. */
    size_t lastoff = size - hp;
    check_page(lastoff / PAGE);
    madvise(mem + lastoff, hp, MADV_DONTNEED);
    int remove_zero = 1;
    for (size_t i = 0; i < hp; i++) {
        if (mem[lastoff + i] != 0) {
            remove_zero = 0;
        }
    }

    int sigbus = 0;
    if (badpage >= 0) {
        armed = 1;
        if (sigsetjmp(jump, 1) == 0) {
            volatile uint8_t v = mem[badpage * PAGE];
            (void) v;
        }
        armed = 0;
        sigbus = sigbus_seen;
    }
    printf("touched=%ld mismatches=%ld remove_zero=%d sigbus=%d\n", touched, mismatches, remove_zero, sigbus);
    if (timing && nlat > 0) {
        qsort(lat, nlat, sizeof *lat, cmp_u64);
        uint64_t sum = 0;
        for (long i = 0; i < nlat; i++) {
            sum += lat[i];
        }
        printf("latency_ns n=%ld mean=%lu p50=%lu p99=%lu max=%lu\n", nlat, (unsigned long) (sum / nlat),
               (unsigned long) lat[nlat / 2], (unsigned long) lat[nlat * 99 / 100], (unsigned long) lat[nlat - 1]);
    }
    fflush(stdout);
    close(sock);
    int ok = mismatches == 0 && remove_zero && (badpage < 0 || sigbus) && writes_ok;
    return ok ? 0 : 3;
}
