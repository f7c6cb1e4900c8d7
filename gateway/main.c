/* wsgw: the WebSocket gateway daemon, and `wsgw ctl` its command-line client. */
#include "gateway/config.h"
#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/wsctl.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	static struct gw_config cfg;
	if (argc > 1 && strcmp(argv[1], "ctl") == 0)
		return wsctl_main(argc - 1, argv + 1);
	int rc = cfg_load(&cfg, argc, argv);
	if (rc == CFG_EXIT) {
		if (cfg_error()[0])
			log_error(0, "%s", cfg_error());
		return cfg_exit_code();
	}
	if (rc) {
		log_error(0, "%s", cfg_error());
		return 2;
	}
	return srv_run(&cfg) ? EXIT_FAILURE : EXIT_SUCCESS;
}
