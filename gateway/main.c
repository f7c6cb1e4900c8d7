/* wsgw: the WebSocket gateway daemon. */
#include "gateway/config.h"
#include "gateway/log.h"
#include "gateway/server.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
	static struct gw_config cfg;
	int rc = cfg_load(&cfg, argc, argv);
	if (rc)
		return rc > 0 ? EXIT_SUCCESS : 2;
	return srv_run(&cfg) ? EXIT_FAILURE : EXIT_SUCCESS;
}
