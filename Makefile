# Makefile for llm: five Unix filters over one C library (see README.md).
#
#   make                  build programs and libllm into build/
#   make check            unit, CLI, fuzz-replay and generated-file tests
#   make check-guarded    the same on the guarded kernels (LLM_KERNELS=guarded)
#   make bench            benchmarks (print figures, never fail on time)
#   make asan | ubsan     the test suite under sanitizers (build-asan/, build-ubsan/)
#   make fuzz             libFuzzer harnesses for FUZZ_TIME seconds each (clang)
#   make gen              regenerate man OPTIONS sections and completions
#   make install          prefix=/usr/local, DESTDIR honoured; make uninstall
#   make CUDA=1           also build the CUDA kernels (nvcc)
#   make CUDA=1 check-cuda  CUDA kernels against the reference (skips without a GPU)
#   make MPI=1            llm-train over OpenMPI: mpirun -np N llm-train ... (B=build-mpi)
#   make WERROR=1         warnings are errors (CI)
#   make NATIVE=1         -march=native everywhere: runs only on CPUs like this one

prefix      ?= /usr/local
exec_prefix ?= $(prefix)
bindir      ?= $(exec_prefix)/bin
libdir      ?= $(exec_prefix)/lib
includedir  ?= $(prefix)/include
datadir     ?= $(prefix)/share
mandir      ?= $(datadir)/man

CC      ?= cc
CXX     ?= c++
NVCC    ?= nvcc
B       ?= build
FUZZ_TIME ?= 60

WARN = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
       -Wmissing-prototypes -Wvla -Wformat=2 -Wwrite-strings
ifeq ($(WERROR),1)
WARN += -Werror
endif
# Instruction sets. The default build runs on any x86-64 (and on any other
# machine its compiler targets): lib/, cmd/ and tests/ are compiled for the
# baseline, and the CPU kernels once per level of CPU_LEVELS, each with its
# flags; kernels/kernels.c picks the best level the CPU runs at start-up
# (LLM_CPU=generic|avx2|avx512|amx forces one). NATIVE=1 compiles everything
# for this CPU instead, with one level of kernels, "native": a binary that
# may die of SIGILL on another machine.
TARGET := $(shell $(CC) -dumpmachine 2>/dev/null)
ifeq ($(NATIVE),1)
OPT        ?= -O2 -march=native -mtune=native
CPU_LEVELS  = native
CPPFLAGS   += -DLLM_CPU_LEVEL=native
else
OPT        ?= -O2
CPU_LEVELS  = generic $(if $(filter x86_64-% amd64-%,$(TARGET)),avx2 avx512 amx)
endif
CPU_FLAGS_generic =
CPU_FLAGS_native  =
CPU_FLAGS_avx2    = -mavx2 -mfma -mf16c
CPU_FLAGS_avx512  = $(CPU_FLAGS_avx2) -mavx512f -mavx512bw -mavx512vl -mavx512dq
# -DLLM_AMX_LEVEL: the tiles on this level alone, where kernels.c has asked
# Linux for their state (not in a NATIVE=1 build on an AMX machine).
CPU_FLAGS_amx     = $(CPU_FLAGS_avx512) -mavx512bf16 -mamx-tile -mamx-bf16 -mamx-int8 \
                    -DLLM_AMX_LEVEL
# amxemu: the amx level's products over kernels/cpu/amx_emulate.h's model
# of the tile instructions, for test_gemm and test_q8 (no machine here has
# AMX).
# AMX_EMULATE=1 builds the whole amx level so (in a build directory of its
# own, B=build-amxemu), run wherever the CPU has AVX512_BF16: the suite's
# bf16 training then runs on the model of the tiles (slowly).
CPU_FLAGS_amxemu  = $(CPU_FLAGS_avx512) -mavx512bf16 -DLLM_AMX_EMULATE
ifeq ($(AMX_EMULATE),1)
CPU_FLAGS_amx     = $(CPU_FLAGS_amxemu)
$(B)/kernels/kernels.o: CPPFLAGS += -DLLM_AMX_EMULATE
endif
# The level whose names code compiled once sees (kernels/cpu/level.h).
CPU_BASE = $(firstword $(CPU_LEVELS))
SAN      ?=
CFLAGS   ?=
CPPFLAGS += -Ilib -Ikernels -Icmd -D_GNU_SOURCE
ALL_CFLAGS   = -std=c11 $(WARN) $(OPT) -g -pthread -fopenmp -fPIC $(SAN) $(CFLAGS)
ALL_CXXFLAGS = -std=c++17 -Wall -Wextra $(OPT) -g -pthread -fPIC $(SAN) $(CXXFLAGS)
# OpenBLAS built on OpenMP (Debian libopenblas-openmp-dev) shares one thread
# pool with the OpenMP kernels; the default pthread build keeps its own
# threads spinning between calls, which on 2 cores made 2 threads 2.5x
# slower than the OpenMP build. Use it when installed (BLAS_DIR= to opt out).
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
BLAS_DIR  ?= $(wildcard /usr/lib/$(MULTIARCH)/openblas-openmp)
ifneq ($(strip $(BLAS_DIR)),)
CPPFLAGS += -I/usr/include/$(MULTIARCH)/openblas-openmp
BLAS_LIBS = -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas
else
BLAS_LIBS = -lopenblas
endif
# PCRE2 (Debian libpcre2-dev) runs the byte-level BPE pre-tokenizer regexes
# (lib/text/bpe.c): the peers' patterns need Unicode property classes (\p{L},
# \p{N}), lookahead and (?i:) groups, which POSIX regex lacks. utf8proc
# (Debian libutf8proc-dev) gives Unicode NFKC and case folding for the
# leakage check (lib/eval/leak.c): normalisation tables are not ours to copy.
LIBS     = $(shell pkg-config --libs sentencepiece 2>/dev/null || echo -lsentencepiece -lsentencepiece_train) \
           $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8) \
           $(shell pkg-config --libs libutf8proc 2>/dev/null || echo -lutf8proc) \
           $(BLAS_LIBS) -lm -lstdc++ -fopenmp -pthread

ifeq ($(CUDA),1)
CUDA_HOME ?= /usr/local/cuda
# The CUDA Toolkit is too large to install behind the user's back: say what is missing.
ifeq ($(shell command -v $(NVCC) 2>/dev/null || command -v $(CUDA_HOME)/bin/nvcc 2>/dev/null),)
$(error make CUDA=1 needs the CUDA Toolkit 12 or later (nvcc, cuBLAS): nvcc is neither on PATH nor in $(CUDA_HOME)/bin; install NVIDIA's cuda-toolkit package or Debian's nvidia-cuda-toolkit, or set NVCC= or CUDA_HOME=)
endif
CPPFLAGS  += -DLLM_CUDA=1
NVCCFLAGS ?= -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90 -Xcompiler -fPIC
NVCC_WARN  = -Xcompiler -Wall,-Wextra
ifeq ($(WERROR),1)
NVCC_WARN += -Werror all-warnings -Xcompiler -Werror
endif
CUDA_LIBS  = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcublasLt -lcudart
LIBS      += $(CUDA_LIBS)
CU_SRC     = $(wildcard kernels/cuda/*.cu)
endif

# kernels/cpu/: the reference kernels (the yardstick), the one thread
# pool (llm_kernels_parallel(), a single symbol with no arithmetic) and
# the host memory of the cpu and ref tables are compiled once; every other file is arithmetic and compiled once per
# level into $(B)/kernels/cpu/LEVEL/, its names suffixed by level.h.
CPU_ONCE  = kernels/cpu/ref.c kernels/cpu/ref_sample.c kernels/cpu/parallel.c \
            kernels/cpu/memory.c
CPU_MULTI = $(filter-out $(CPU_ONCE),$(wildcard kernels/cpu/*.c))
CPU_OBJ   = $(foreach l,$(CPU_LEVELS),$(CPU_MULTI:kernels/cpu/%.c=$(B)/kernels/cpu/$(l)/%.o))
LIB_SRC  = $(wildcard lib/*.c lib/*/*.c) $(wildcard kernels/*.c) $(CPU_ONCE)
LIB_CXX  = $(wildcard lib/*.cc lib/*/*.cc)
LIB_OBJ  = $(LIB_SRC:%.c=$(B)/%.o) $(CPU_OBJ) $(LIB_CXX:%.cc=$(B)/%.o) $(CU_SRC:%.cu=$(B)/%.o)
CLI_OBJ  = $(B)/cmd/cli.o $(B)/cmd/cli_parse.o $(B)/cmd/cli_gen.o $(B)/cmd/labelled.o \
           $(B)/cmd/plot.o
PROGS    = $(patsubst cmd/%.c,%,$(wildcard cmd/llm-*.c))
BINS     = $(PROGS:%=$(B)/bin/%)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNITS    = $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
REPLAYS  = $(FUZZ_SRC:tests/fuzz/%.c=$(B)/tests/replay_%)
BENCH_SRC = $(wildcard tests/bench/*.c)
BENCHES  = $(BENCH_SRC:tests/bench/%.c=$(B)/bench/%)

# Man pages: man/X.in is the hand-written page; @OPTIONS@ in it is replaced
# by the program's generated option list to give the committed man/X.
MAN_IN   = $(wildcard man/*.in)
MANS     = $(MAN_IN:%.in=%) $(filter-out $(MAN_IN:%.in=%),$(wildcard man/*.[1-9]))
COMPL    = $(foreach p,$(PROGS),completions/$(p).bash completions/_$(p) completions/$(p).fish)

.PHONY: all deps check check-guarded test asan ubsan bench fuzz gen check-gen \
        install uninstall clean demo
.DELETE_ON_ERROR:

all: $(BINS) $(B)/libllm.a $(B)/libllm.so

HDRS = $(wildcard lib/*.h lib/*/*.h kernels/*.h kernels/cpu/*.h cmd/*.h)

# Objects built with other flags (NATIVE=, the levels) are rebuilt: a stamp
# per setting, as for MPI= below.
empty :=
CPU_STAMP = $(B)/.cpu-$(subst $(empty) ,-,$(strip $(CPU_LEVELS)))
$(CPU_STAMP):
	@mkdir -p $(@D)
	@rm -f $(B)/.cpu-* && touch $@

$(B)/%.o: %.c $(HDRS) $(CPU_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

# The CPU kernels' element-wise loops rely on auto-vectorisation, which
# needs -O3 with GCC, sqrtf in loops not having to set errno, and (for the
# NaN-preserving select in fast_expf, so swiglu vectorises) comparisons
# that need not keep floating-point exception flags.
$(B)/kernels/cpu/%.o: CFLAGS += -O3 -fno-math-errno \
	-fno-trapping-math

# One object per level and source: that level's flags after all others.
define cpu_level_rule
$$(B)/kernels/cpu/$(1)/%.o: kernels/cpu/%.c $$(HDRS) $$(CPU_STAMP)
	@mkdir -p $$(@D)
	$$(CC) $$(CPPFLAGS) -DLLM_CPU_LEVEL=$(1) $$(ALL_CFLAGS) $$(CPU_FLAGS_$(1)) -c $$< -o $$@
endef
$(foreach l,$(CPU_LEVELS),$(eval $(call cpu_level_rule,$(l))))
ifneq ($(filter amx,$(CPU_LEVELS)),)
$(eval $(call cpu_level_rule,amxemu))
# test_gemm and test_q8 link amxemu's gemm.o and q8.o.
$(B)/tests/test_gemm $(B)/tests/test_q8: $(B)/tests/test_%: $(B)/tests/unit/test_%.o \
                                         $(B)/kernels/cpu/amxemu/%.o $(B)/libllm.a
	@mkdir -p $(@D)
	$(CXX) $(SAN) -o $@ $^ $(LIBS)
endif
# kernels.c offers the levels that were built.
$(B)/kernels/kernels.o: CPPFLAGS += $(CPU_LEVELS:%=-DLLM_CPU_HAS_%)

$(B)/%.o: %.cc $(wildcard lib/*.h lib/*/*.h) $(CPU_STAMP)
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(ALL_CXXFLAGS) -c $< -o $@

$(B)/%.o: %.cu $(wildcard kernels/*.h kernels/cpu/*.h kernels/cuda/*.h kernels/cuda/*.cuh)
	@mkdir -p $(@D)
	$(NVCC) $(CPPFLAGS) $(NVCCFLAGS) $(NVCC_WARN) -c $< -o $@

$(B)/libllm.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(B)/libllm.so: $(LIB_OBJ)
	$(CXX) -shared $(SAN) -o $@ $^ $(LIBS)

$(B)/bin/%: $(B)/cmd/%.o $(CLI_OBJ) $(B)/libllm.a
	@mkdir -p $(@D)
	$(CXX) $(SAN) -o $@ $< $(CLI_OBJ) $(B)/libllm.a $(LIBS)

# llm-train's collectives (cmd/par.c): with MPI=1, OpenMPI (Debian
# libopenmpi-dev; flags from mpicc, else pkg-config ompi-c), so that
# `mpirun -np N llm-train ...` trains N data-parallel ranks; without it, one
# process. Only llm-train links MPI. A stamp per setting rebuilds par.o
# when MPI= changes; a separate build directory (B=build-mpi) keeps both.
# With MPI=1 and CUDA=1 together, GPU ranks (one per GPU) sum their
# gradients in GPU memory over NCCL (kernels/cuda/allreduce.c, linked into
# llm-train only, with -lnccl): the CUDA Toolkit's NCCL, or NVIDIA's
# libnccl-dev (NCCL_HOME= where it is not in $(CUDA_HOME)).
comma    := ,
NCCL_ON   = $(if $(and $(filter 1,$(MPI)),$(filter 1,$(CUDA))),1)
MPI_STAMP = $(B)/cmd/.mpi-$(if $(filter 1,$(MPI)),on,off)$(if $(NCCL_ON),-nccl)
PAR_OBJ   = $(B)/cmd/par.o
ifeq ($(NCCL_ON),1)
NCCL_HOME ?= $(CUDA_HOME)
NCCL_INC  := $(firstword $(wildcard $(NCCL_HOME)/include/nccl.h /usr/include/nccl.h \
                                    /usr/local/include/nccl.h))
ifeq ($(NCCL_INC),)
$(error make MPI=1 CUDA=1 needs NCCL (nccl.h, libnccl): not in $(NCCL_HOME)/include nor /usr/include; install NVIDIA's libnccl-dev, or set NCCL_HOME=)
endif
NCCL_LIBDIR := $(firstword $(wildcard $(NCCL_HOME)/lib64/libnccl.so $(NCCL_HOME)/lib/libnccl.so))
NCCL_LIBS ?= $(if $(NCCL_LIBDIR),-L$(dir $(NCCL_LIBDIR)) -Wl$(comma)-rpath$(comma)$(dir $(NCCL_LIBDIR))) -lnccl
$(B)/kernels/cuda/allreduce.o: CPPFLAGS += -isystem $(dir $(NCCL_INC)) -isystem $(CUDA_HOME)/include
$(B)/cmd/par.o: CPPFLAGS += -DLLM_NCCL=1
$(B)/cmd/par.o: kernels/cuda/allreduce.h kernels/cuda/cuda.h
PAR_OBJ  += $(B)/kernels/cuda/allreduce.o
endif
ifeq ($(MPI),1)
# On a fresh machine, install Open MPI as `make check` installs its packages.
ifeq ($(shell command -v mpicc 2>/dev/null),)
$(info make MPI=1: Open MPI's mpicc not found; tools/deps.sh mpi installs it)
ifneq ($(shell sh tools/deps.sh mpi >&2 && echo ok),ok)
$(error make MPI=1 needs Open MPI: apt-get install openmpi-bin libopenmpi-dev)
endif
endif
MPI_CFLAGS ?= $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile 2>/dev/null || \
                pkg-config --cflags ompi-c))
MPI_LIBS   ?= $(shell mpicc --showme:link 2>/dev/null || pkg-config --libs ompi-c)
$(B)/cmd/par.o: CPPFLAGS += -DLLM_MPI=1 $(MPI_CFLAGS)
endif
$(MPI_STAMP):
	@mkdir -p $(@D)
	@rm -f $(B)/cmd/.mpi-* && touch $@
$(B)/cmd/par.o: $(MPI_STAMP)
$(B)/bin/llm-train: $(B)/cmd/llm-train.o $(PAR_OBJ) $(CLI_OBJ) $(B)/libllm.a
	@mkdir -p $(@D)
	$(CXX) $(SAN) -o $@ $< $(PAR_OBJ) $(CLI_OBJ) $(B)/libllm.a $(LIBS) $(MPI_LIBS) $(NCCL_LIBS)

# Benchmark programs, run by the tests/bench/*.sh scripts of `make bench`.
$(B)/bench/%: $(B)/tests/bench/%.o $(B)/libllm.a
	@mkdir -p $(@D)
	$(CXX) $(SAN) -o $@ $< $(B)/libllm.a $(LIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libllm.a
	@mkdir -p $(@D)
	$(CXX) $(SAN) -o $@ $< $(B)/libllm.a $(LIBS)

# The CUDA flash attention kernels run on the CPU (C++ threads for CUDA's),
# against the reference: in every build, no GPU or nvcc needed.
UNITS += $(B)/tests/test_flash_emulated
$(B)/tests/test_flash_emulated: tests/cuda/test_flash_emulated.cc kernels/cuda/flash.cuh \
                                kernels/kernels.h $(B)/libllm.a
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(ALL_CXXFLAGS) -o $@ $< $(B)/libllm.a $(LIBS)

# test_cli drives cmd/cli.c, which is not part of libllm.
$(B)/tests/test_cli: $(B)/tests/unit/test_cli.o $(CLI_OBJ) $(B)/libllm.a
	@mkdir -p $(@D)
	$(CXX) $(SAN) -o $@ $< $(CLI_OBJ) $(B)/libllm.a $(LIBS)

$(B)/tests/replay_%: $(B)/tests/fuzz/%.o $(B)/tests/fuzz/replay.o $(B)/libllm.a
	@mkdir -p $(@D)
	$(CXX) $(SAN) -o $@ $< $(B)/tests/fuzz/replay.o $(B)/libllm.a $(LIBS)

# ---------------------------------------------------------------- tests
# `make check` and `make demo` first install missing Debian packages
# (tools/deps.sh says what), so that they work on a fresh machine.
check:
	@sh tools/deps.sh check
	@$(MAKE) --no-print-directory test

test: all $(UNITS) $(REPLAYS)
	@B=$(B) sh tests/run.sh

# The whole suite again on the guarded kernels (kernels/guarded.c): the
# cpu kernels, whose memory the library cannot touch outside the table, so
# that any leftover host access of a weight, activation or cache crashes.
# Same binaries: the table is chosen at run time.
check-guarded: all $(UNITS) $(REPLAYS)
	@LLM_KERNELS=guarded B=$(B) sh tests/run.sh

asan:
	SANITIZED=1 $(MAKE) B=build-asan OPT="-O1 -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" check

ubsan:
	SANITIZED=1 $(MAKE) B=build-ubsan OPT="-O1 -fno-omit-frame-pointer" \
	    SAN="-fsanitize=undefined -fno-sanitize-recover=all" check

bench:
	@sh tools/deps.sh bench
	@$(MAKE) --no-print-directory all $(BENCHES)
	@B=$(B) sh tests/bench/run.sh

# libFuzzer needs clang; each harness runs FUZZ_TIME seconds from its seed
# corpus. New inputs and crashes go to $(FUZZ_B)/, never into the committed
# seeds: merge the keepers by hand with
#   $(FUZZ_B)/NAME -merge=1 tests/fuzz/corpus/NAME $(FUZZ_B)/corpus/NAME
# `make fuzz FUZZ_SRC=tests/fuzz/fuzz_x.c` runs one harness.
FUZZ_B = build-fuzz
# The library is compiled once for all harnesses (instrumented, not linked
# with libFuzzer's main); each harness links it with its own fuzz target.
FUZZ_FLAGS = $(CPPFLAGS) -DLLM_CPU_HAS_$(CPU_BASE) -std=c11 -g -O1
FUZZ_SAN   = address,undefined
FUZZ_OBJ   = $(patsubst %.c,$(FUZZ_B)/obj/%.o,$(LIB_SRC) $(CPU_MULTI))
FUZZERS    = $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_B)/%)
$(FUZZ_B)/obj/%.o: %.c
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -MMD -MP -c -o $@ $<
-include $(FUZZ_OBJ:.o=.d)
$(FUZZ_B)/libllm.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^
$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_B)/libllm.a $(LIB_CXX:%.cc=$(B)/%.o)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $< $(LIB_CXX:%.cc=$(B)/%.o) \
	    $(FUZZ_B)/libllm.a $(LIBS)
fuzz: $(FUZZERS)
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  mkdir -p tests/fuzz/corpus/$$n $(FUZZ_B)/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_TIME)s"; \
	  $(FUZZ_B)/$$n -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_B)/$$n- $(FUZZ_B)/corpus/$$n tests/fuzz/corpus/$$n 2>&1 | \
	    grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Test unit written' ; \
	done

# ---------------------------------------------------------------- GPU
# check-cuda: every CUDA kernel against the reference kernels. The test
# links only those two (no OpenBLAS, SentencePiece or OpenMP), so that it
# builds on a bare GPU machine; without a GPU it says so and is skipped.
# tests/cuda/gpu-session.sh runs this on a GPU machine and keeps the logs.
.PHONY: check-cuda
CUDA_TEST = $(B)/tests/cuda/test_cuda_kernels
# The sampling kernels of the two tables (cpu.h) come along: the
# CUDA table points at the CPU's host-side ones, of the base level; and
# the ref table's host memory.
$(CUDA_TEST): $(B)/tests/cuda/test_cuda_kernels.o $(B)/kernels/cpu/ref.o \
              $(B)/kernels/cpu/ref_sample.o $(B)/kernels/cpu/$(CPU_BASE)/sample.o \
              $(B)/kernels/cpu/memory.o $(CU_SRC:%.cu=$(B)/%.o)
	@mkdir -p $(@D)
	$(CXX) $(SAN) -o $@ $^ $(CUDA_LIBS) -lm

# gemm_peak: cuBLAS's fp32 and bf16 peaks on this GPU, against which
# tests/cuda/gpu-session.sh states the model FLOPs utilisation.
GEMM_PEAK = $(B)/tests/cuda/gemm_peak
$(GEMM_PEAK): $(B)/tests/cuda/gemm_peak.o
	@mkdir -p $(@D)
	$(CXX) $(SAN) -o $@ $^ $(CUDA_LIBS)

ifeq ($(CUDA),1)
check-cuda: $(CUDA_TEST)
	@$(CUDA_TEST); rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "check-cuda: skipped (no CUDA device)"; exit 0; fi; \
	exit $$rc
else
check-cuda:
	@echo "check-cuda: needs the CUDA build: make CUDA=1 check-cuda" >&2; exit 2
endif

# ---------------------------------------------------------------- generated docs
gen: $(BINS)
	@B=$(B) sh tests/gen.sh write

check-gen: $(BINS)
	@B=$(B) sh tests/gen.sh check

demo:
	@sh tools/deps.sh demo
	@$(MAKE) --no-print-directory all
	@B=$(B) sh tools/demo.sh

# ---------------------------------------------------------------- install
install: all
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(libdir) $(DESTDIR)$(includedir) \
	    $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(mandir)/man7 \
	    $(DESTDIR)$(datadir)/bash-completion/completions \
	    $(DESTDIR)$(datadir)/zsh/site-functions \
	    $(DESTDIR)$(datadir)/fish/vendor_completions.d
	install -m 755 $(BINS) $(DESTDIR)$(bindir)/
	install -m 644 $(B)/libllm.a $(DESTDIR)$(libdir)/
	install -m 755 $(B)/libllm.so $(DESTDIR)$(libdir)/
	install -m 644 lib/llm.h $(DESTDIR)$(includedir)/
	for m in $(MANS); do s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(mandir)/man$$s/; done
	for p in $(PROGS); do \
	  install -m 644 completions/$$p.bash $(DESTDIR)$(datadir)/bash-completion/completions/$$p; \
	  install -m 644 completions/_$$p $(DESTDIR)$(datadir)/zsh/site-functions/_$$p; \
	  install -m 644 completions/$$p.fish $(DESTDIR)$(datadir)/fish/vendor_completions.d/$$p.fish; \
	done

uninstall:
	rm -f $(PROGS:%=$(DESTDIR)$(bindir)/%) $(DESTDIR)$(libdir)/libllm.a \
	    $(DESTDIR)$(libdir)/libllm.so $(DESTDIR)$(includedir)/llm.h
	for m in $(MANS); do s=$${m##*.}; rm -f $(DESTDIR)$(mandir)/man$$s/$$(basename $$m); done
	for p in $(PROGS); do \
	  rm -f $(DESTDIR)$(datadir)/bash-completion/completions/$$p \
	    $(DESTDIR)$(datadir)/zsh/site-functions/_$$p \
	    $(DESTDIR)$(datadir)/fish/vendor_completions.d/$$p.fish; \
	done

clean:
	rm -rf build build-asan build-ubsan build-fuzz build-mpi
