/* cli.h: the vmscope command's subcommands. Each returns the process exit status:
 * 0 success, 1 some input failed (the rest was still done), 2 usage error. */
#ifndef VS_CLI_H
#define VS_CLI_H

#define VS_EXIT_OK 0
#define VS_EXIT_PARTIAL 1
#define VS_EXIT_USAGE 2

int vs_cmd_inspect(int argc, char **argv);

#endif
