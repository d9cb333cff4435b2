/*
 * A qemu TCG plugin: counts the guest instructions a qemu-user process executes and writes the
 * total to the file named by its "out" argument when the guest exits. The same count as qemu's
 * own tests/plugin/insn.c in its inline mode, without glib. Built by scripts/pi-figures.sh
 * against qemu-plugin.h from Debian's qemu source, for Debian's dynamically linked qemu-user.
 *
 *   qemu-arm -plugin ./qemu-insn.so,out=/tmp/count ./program
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;
static char out[4096];

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void exited(qemu_plugin_id_t id, void *unused)
{
    (void)id;
    (void)unused;
    FILE *f = fopen(out, "w");
    if (f) {
        fprintf(f, "%llu\n", (unsigned long long)executed);
        fclose(f);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out, sizeof out, "%s", argv[i] + 4);
        }
    }
    if (out[0] == '\0') {
        fprintf(stderr, "qemu-insn: give out=FILE\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    qemu_plugin_register_atexit_cb(id, exited, NULL);
    return 0;
}
