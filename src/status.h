/* status.h - the one status vocabulary shared by I/O and parsing (nginx style). */
#ifndef FERRY_STATUS_H
#define FERRY_STATUS_H

#define FERRY_OK 0      /* done */
#define FERRY_ERR (-1)  /* failed; the object is not usable any more */
#define FERRY_AGAIN (-2) /* not yet: wait for more bytes or readiness */

#endif
