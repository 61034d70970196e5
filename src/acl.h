/* acl.h - CIDR lists and port ranges: who may use ferry and where it may connect. */
#ifndef FERRY_ACL_H
#define FERRY_ACL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family;         /* AF_INET or AF_INET6 */
	uint8_t addr[16];   /* network byte order; IPv4 uses the first 4 bytes */
	unsigned prefix;    /* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr *v;
	size_t n;
};

struct port_range {
	uint16_t lo, hi;
};

struct port_list {
	struct port_range *v;
	size_t n;
};

/* Parse "10.0.0.0/8", "192.0.2.1" (a /32), "::1", "fe80::/10"; host bits set beyond the
 * prefix are an error ("10.1.2.3/8"). FERRY_OK or FERRY_ERR with a reason in err. */
int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen);
/* Append one CIDR; FERRY_ERR on out-of-memory. */
int cidr_list_add(struct cidr_list *l, const struct cidr *c);
void cidr_list_free(struct cidr_list *l);
/* Does any entry contain sa (AF_INET or AF_INET6)? IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) are unwrapped and matched as IPv4. */
int cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

/* Parse "443" or "8000-8100" (1..65535, lo <= hi). */
int port_range_parse(const char *s, struct port_range *out, char *err, size_t errlen);
int port_list_add(struct port_list *l, const struct port_range *r);
void port_list_free(struct port_list *l);
int port_list_match(const struct port_list *l, uint16_t port);

#endif
