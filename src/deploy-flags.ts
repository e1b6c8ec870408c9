import { Args, Flags } from '@oclif/core';

/** Flags and arguments the `deploy` subcommands share (kept out of src/commands/: oclif loads every file there as a command). */
export const dockerHostFlag = Flags.string({ description: 'Docker daemon (default $DOCKER_HOST or unix:///var/run/docker.sock)' });
export const serviceArg = Args.string({ description: 'service name', required: true });
