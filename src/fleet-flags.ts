import { Flags } from '@oclif/core';

/**
 * Flags that name the fleet store (cluster commands and `run --host`). They name files, never
 * secrets: a password comes from ELASTIC_ETCD_PASSWORD or a file (see engine/fleet/connect.ts).
 */
export const storeFlags = {
  etcd: Flags.string({ description: 'etcd endpoints, URL[,URL...] (default $ELASTIC_ETCD)', helpGroup: 'FLEET' }),
  fleet: Flags.string({ description: 'fleet name: keys live under /elastic/<fleet>/ (default $ELASTIC_FLEET)', helpGroup: 'FLEET' }),
  'etcd-ca': Flags.string({ description: 'CA of the etcd servers, PEM file (default $ELASTIC_ETCD_CA)', helpGroup: 'FLEET' }),
  'etcd-cert': Flags.string({ description: 'client certificate, PEM file (default $ELASTIC_ETCD_CERT)', helpGroup: 'FLEET' }),
  'etcd-key': Flags.string({ description: 'client key, PEM file (default $ELASTIC_ETCD_KEY)', helpGroup: 'FLEET' }),
  'etcd-user': Flags.string({ description: 'etcd user (default $ELASTIC_ETCD_USER); the password from $ELASTIC_ETCD_PASSWORD or --etcd-password-file', helpGroup: 'FLEET' }),
  'etcd-password-file': Flags.string({ description: 'file whose first line is the etcd password (default $ELASTIC_ETCD_PASSWORD_FILE)', helpGroup: 'FLEET' }),
};

/** `elastic run` as a fleet host (no -c: the config comes from the store). */
export const hostFlags = {
  ...storeFlags,
  host: Flags.string({ description: 'run as this host of the fleet (--etcd, --fleet): config from the store, not -c', helpGroup: 'FLEET' }),
  address: Flags.string({ description: 'an address this host serves on, shown in cluster status (repeatable; default: its non-loopback IPv4 addresses)', multiple: true, helpGroup: 'FLEET' }),
  'lease-ttl': Flags.integer({ description: 'seconds before a silent host counts as gone (2-60)', default: 10, min: 2, max: 60, helpGroup: 'FLEET' }),
};
