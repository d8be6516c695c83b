/*
 * The one version of every program (--version), of `make install`'s and
 * the Debian package's (debian/changelog must agree: tests/blackbox/
 * test_docs.py checks it).
 */
#ifndef POSTINO_VERSION_H
#define POSTINO_VERSION_H

#define POSTINO_VERSION	"0.9.0"

#endif
