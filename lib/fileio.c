/* fileio.c: the pieces of atomic file output shared by every writer of the
 * library (safetensors.c, gguf.c, export.c): a temporary file or folder
 * beside the target, a write that finishes, and a synced directory, so that
 * a target is either its old self or the complete new one. The target is
 * the file a link names, where a link is (the link stays); a device or FIFO
 * is written in place (renaming over it would replace /dev/stdout by a
 * file); a folder is refused. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int llm_write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        /* Linux writes at most about 2 GiB per call. */
        size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t k = write(fd, s, chunk);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

int llm_output_target(const char *path, char **target, int *direct)
{
    struct stat st;
    *target = NULL;
    *direct = 0;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        char *real = realpath(path, NULL);
        if (real) {
            *target = real;
            if (stat(real, &st) != 0)
                st.st_mode = S_IFREG;
        } else {
            *direct = 1;   /* a link to nothing yet: open() creates it */
            st.st_mode = S_IFREG;
        }
    } else if (stat(path, &st) != 0) {
        st.st_mode = S_IFREG;   /* to be created */
    }
    if (S_ISDIR(st.st_mode)) {
        free(*target);
        *target = NULL;
        return llm_fail(LLM_ERR_IO, "cannot write '%s': it is a folder", path);
    }
    if (!S_ISREG(st.st_mode))
        *direct = 1;
    if (!*target && !(*target = strdup(path)))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    return LLM_OK;
}

/* Like mkstemp (or mkdtemp), but created with mode 0666 (0777) less the
 * umask, as any other output of the programs: mkstemp's 0600 would make
 * every model file private, and fixing it afterwards needs the umask, which
 * cannot be read without a race between threads. */
static int create_temp(const char *path, int dir, char **tmp_out)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static atomic_uint counter;
    size_t plen = strlen(path), tlen;
    if (llm_add_size(plen, sizeof ".tmpXXXXXX", &tlen))
        return llm_fail(LLM_ERR_INVALID, "path too long");
    char *tmp = malloc(tlen);
    if (!tmp)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmpXXXXXX", sizeof ".tmpXXXXXX");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 40;
    for (int attempt = 0; attempt < 100; attempt++) {
        x ^= (uint64_t)atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15u;
        for (int i = 0; i < 6; i++) {
            x ^= x << 13;   /* xorshift64 */
            x ^= x >> 7;
            x ^= x << 17;
            tmp[plen + 4 + (size_t)i] = chars[x % (sizeof chars - 1)];
        }
        int fd = dir ? mkdir(tmp, 0777) : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        if (errno != EEXIST) {
            int e = errno;
            free(tmp);
            return llm_fail(LLM_ERR_IO, "cannot write '%s': cannot create a temporary %s: %s",
                            path, dir ? "folder" : "file", strerror(e));
        }
    }
    free(tmp);
    return llm_fail(LLM_ERR_IO, "cannot write '%s': cannot create a temporary %s: %s", path,
                    dir ? "folder" : "file", strerror(EEXIST));
}

int llm_create_temp(const char *path, char **tmp_out)
{
    char *target;
    int direct, rc = llm_output_target(path, &target, &direct);
    if (rc)
        return rc;
    if (direct) {
        *tmp_out = NULL;
        int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        int e = errno;
        free(target);
        return fd >= 0 ? fd
                       : llm_fail(LLM_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    rc = create_temp(target, 0, tmp_out);
    free(target);
    return rc;
}

int llm_create_temp_dir(const char *path, char **tmp_out)
{
    int rc = create_temp(path, 1, tmp_out);
    return rc < 0 ? rc : LLM_OK;
}

/* The folder that holds `path` (malloc'd; NULL without memory). */
static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
}

int llm_can_write_beside(const char *path)
{
    char *target;
    int direct, rc = llm_output_target(path, &target, &direct);
    if (rc)
        return rc == LLM_ERR_NOMEM ? ENOMEM : EISDIR;
    if (direct) {   /* a device or FIFO, written in place */
        int e = access(target, W_OK) == 0 || errno == ENOENT ? 0 : errno;
        free(target);
        return e;
    }
    char *dir = parent_dir(target);
    free(target);
    if (!dir)
        return ENOMEM;
    /* Effective ids, as open() would use; creates nothing, so a process
     * killed here leaves nothing behind. */
    struct stat st;
    int e = stat(dir, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR
          : faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0 ? 0 : errno;
    free(dir);
    return e;
}

void llm_sync_dir(const char *path)
{
    char *dir = parent_dir(path);
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int llm_finish_temp(int fd, char *tmp, const char *path, int ok)
{
    const char *step = "cannot write";
    if (ok && tmp && !(ok = fsync(fd) == 0))   /* (a device or FIFO may not sync) */
        step = "cannot sync";
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        e = errno;
        step = "cannot write";
    }
    /* tmp is the target (path, or the file a link at path names) and
     * ".tmpXXXXXX". */
    size_t tn = tmp ? strlen(tmp) - (sizeof ".tmpXXXXXX" - 1) : 0;
    char *target = tmp ? strndup(tmp, tn) : NULL;
    if (ok && tmp && !target) {
        ok = 0;
        e = ENOMEM;
    }
    if (ok && tmp && rename(tmp, target) != 0) {
        ok = 0;
        e = errno;
        step = "cannot rename the temporary file to";
    }
    int rc = LLM_OK;
    if (!ok) {
        if (tmp)
            unlink(tmp);
        rc = llm_fail(LLM_ERR_IO, "%s '%s': %s", step, path, strerror(e));
    } else if (tmp) {
        llm_sync_dir(target);
    }
    free(target);
    free(tmp);
    return rc;
}

int llm_write_file(const char *path, const void *p, size_t n)
{
    char *tmp = NULL;
    int fd = llm_create_temp(path, &tmp);
    if (fd < 0)
        return fd;
    return llm_finish_temp(fd, tmp, path, llm_write_all(fd, p, n) == 0);
}

void llm_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            size_t n = strlen(dir) + strlen(e->d_name) + 2;
            char *p = malloc(n);
            if (!p)
                continue;
            snprintf(p, n, "%s/%s", dir, e->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int llm_file_digest(const char *path, uint64_t *size, uint64_t *hash)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return llm_fail(LLM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char buf[1 << 16];
    uint64_t h = 0xcbf29ce484222325ULL, n = 0;
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < k; i++)   /* FNV-1a */
            h = (h ^ buf[i]) * 0x100000001b3ULL;
        n += k;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err)
        return llm_fail(LLM_ERR_IO, "cannot read '%s': %s", path, strerror(err));
    *size = n;
    *hash = h;
    return LLM_OK;
}

static int remove_temps_beside(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *dir = parent_dir(path);
    if (!dir)
        return 0;
    DIR *d = opendir(dir);
    int removed = 0;
    size_t blen = strlen(base);
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *n = e->d_name;
        /* BASE.tmpXXXXXX, as create_temp() names them */
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp", 4) != 0 ||
            strlen(n + blen + 4) != 6 || strspn(n + blen + 4, "abcdefghijklmnopqrstuvwxyz"
                                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != 6)
            continue;
        size_t len = strlen(dir) + strlen(n) + 2;
        char *full = malloc(len);
        if (!full)
            break;
        snprintf(full, len, "%s/%s", dir, n);
        struct stat st;
        if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) && unlink(full) == 0)
            removed++;
        free(full);
    }
    if (d)
        closedir(d);
    free(dir);
    return removed;
}

int llm_remove_stale_temps(const char *path)
{
    char *target;
    int direct;
    if (llm_output_target(path, &target, &direct))
        return 0;
    int removed = direct ? 0 : remove_temps_beside(target);
    free(target);
    return removed;
}
