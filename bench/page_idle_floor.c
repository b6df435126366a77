/* The kernel's own cost of DAMON-style sampling through idle page tracking, with no Python.
 *
 * bench/page_idle_floor.py compiles this and runs it in the shared-kernel VM (and its
 * calibration part on the host). Per sampling interval, as the page_idle engine does: one
 * 8-byte bitmap write per distinct word that holds a sampled folio (marks it idle), then one
 * 8-byte read of each such word (the kernel walks the rmap of every idle folio in it).
 *
 *   page_idle_floor sample MODE NR_REGIONS CYCLES TOUCH   MODE: thp | 4k; TOUCH: 1 = the sampled
 *                                                         pages are written between mark and read
 *   page_idle_floor calibrate                             system calls with known kernel work
 *
 * Prints one JSON object: nanoseconds of this process's CPU (user + system) per unit.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define HUGE (2UL << 20)
#define SIZE (1UL << 30)

static double cpu_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int calibrate(void)
{
	/* 8-byte and 4 KiB preads of /proc/self/pagemap: the bench's Python probes, without Python */
	char *buf = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static char out[4096];
	int fd = open("/proc/self/pagemap", O_RDONLY);
	int i, n = 200000;
	double t0, small, big, nop;

	if (buf == MAP_FAILED || fd < 0)
		return perror("calibrate"), 1;
	memset(buf, 1, HUGE);
	t0 = cpu_ns();
	for (i = 0; i < n; i++)
		getppid();
	nop = (cpu_ns() - t0) / n;
	t0 = cpu_ns();
	for (i = 0; i < n; i++)
		if (pread(fd, out, 8, ((uintptr_t)buf / PAGE + (i & 511)) * 8) != 8)
			return perror("pread"), 1;
	small = (cpu_ns() - t0) / n;
	t0 = cpu_ns();
	for (i = 0; i < n / 20; i++)
		if (pread(fd, out, 4096, (uintptr_t)buf / PAGE * 8) != 4096)
			return perror("pread"), 1;
	big = (cpu_ns() - t0) / (n / 20);
	printf("{\"getppid_ns\": %.1f, \"small_pread_ns\": %.1f, \"big_pread_ns\": %.1f}\n", nop, small, big);
	return 0;
}

static int sample(int thp, int nr_regions, int cycles, int touch)
{
	char *raw = mmap(NULL, SIZE + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *buf = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	uint64_t *words = calloc(nr_regions, 8), *bits = calloc(nr_regions, 8);
	char **addrs = calloc(nr_regions, sizeof(char *));
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int bm = open("/sys/kernel/mm/page_idle/bitmap", O_RDWR);
	int i, c, nr_words = 0, nr_thp = 0, nr_bits = 0;
	long seen_idle = 0;
	uint64_t *pfns = calloc(nr_regions, 8);
	double t0, spent;

	if (raw == MAP_FAILED || pm < 0 || bm < 0)
		return perror("sample: open"), 1;
	madvise(buf, SIZE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (uintptr_t off = 0; off < SIZE; off += PAGE)
		buf[off] = 1;
	for (i = 0; i < nr_regions; i++) {
		uint64_t entry;

		/* the middle page of each of nr_regions equal regions */
		addrs[i] = buf + (SIZE / nr_regions) * i + SIZE / nr_regions / 2 / PAGE * PAGE;
		if (pread(pm, &entry, 8, (uintptr_t)addrs[i] / PAGE * 8) != 8 || !(entry >> 63))
			return fprintf(stderr, "sample: page %d not present\n", i), 1;
		pfns[i] = entry & ((1ULL << 55) - 1);
		if (thp && (pfns[i] & 511) == (((uintptr_t)addrs[i] / PAGE) & 511))
			nr_thp++;
		/* the engine marks a large folio by its head PFN */
		if (thp)
			pfns[i] &= ~511ULL;
	}
	qsort(pfns, nr_regions, 8, cmp_u64);
	for (i = 0; i < nr_regions; i++) {
		uint64_t w = pfns[i] / 64;

		if (!nr_words || words[nr_words - 1] != w)
			words[nr_words++] = w;
		bits[nr_words - 1] |= 1ULL << (pfns[i] % 64);
	}
	for (i = 0; i < nr_words; i++)
		nr_bits += __builtin_popcountll(bits[i]);
	t0 = cpu_ns();
	for (c = 0; c < cycles; c++) {
		for (i = 0; i < nr_words; i++)
			if (pwrite(bm, &bits[i], 8, words[i] * 8) != 8)
				return perror("sample: bitmap write"), 1;
		if (touch) {
			spent = cpu_ns();
			for (i = 0; i < nr_regions; i++)
				addrs[i][0]++;
			t0 += cpu_ns() - spent;         /* the workload's part is not the monitor's */
		}
		for (i = 0; i < nr_words; i++) {
			uint64_t v;

			if (pread(bm, &v, 8, words[i] * 8) != 8)
				return perror("sample: bitmap read"), 1;
			seen_idle += __builtin_popcountll(v & bits[i]);
		}
	}
	spent = cpu_ns() - t0;
	printf("{\"mode\": \"%s\", \"touch\": %d, \"nr_regions\": %d, \"cycles\": %d, \"words\": %d, "
	       "\"thp_mapped_samples\": %d, \"idle_fraction\": %.3f, \"ns_per_cycle\": %.0f}\n",
	       thp ? "thp" : "4k", touch, nr_regions, cycles, nr_words, nr_thp,
	       (double)seen_idle / ((double)cycles * nr_bits), spent / cycles);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "calibrate"))
		return calibrate();
	if (argc == 6 && !strcmp(argv[1], "sample"))
		return sample(!strcmp(argv[2], "thp"), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: %s calibrate | sample thp|4k NR_REGIONS CYCLES TOUCH\n", argv[0]);
	return 2;
}
