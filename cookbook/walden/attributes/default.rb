# frozen_string_literal: true

# walden's own attributes. Those left nil fall back to the WAL-E cookbook
# attributes (node['wal_e'], node['wal-e'], node['postgresql']['wal_e'];
# see the README's mapping table) and then to the built-in default. They
# are nil here, not the default itself, so that a legacy value can show.
default['walden']['envdir'] = nil # => /etc/wal-e.d/env
default['walden']['user'] = nil   # => postgres (walden.service User=)
default['walden']['group'] = nil  # => postgres (group of the envdir files)

# Envdir variables, NAME => value, one file each. These win over legacy
# attributes; false (or nil, or '') removes a variable even when a legacy
# attribute sets it.
default['walden']['env'] = {}
# Variables to write with `sensitive true` besides those the name gives away.
default['walden']['sensitive_variables'] = []

# Proof of restorability. nil keeps the agent's defaults: `walden verify`
# weekly (0 3 * * 0 UTC), restore drills off, drills under
# /var/tmp/walden-drill. 'off' disables a schedule. A drill needs room for
# a whole restored copy of the cluster in the drill directory.
default['walden']['verify']['schedule'] = nil # WALDEN_VERIFY_SCHEDULE
default['walden']['drill']['schedule'] = nil  # WALDEN_DRILL_SCHEDULE
default['walden']['drill']['dir'] = nil       # WALDEN_DRILL_DIR

default['walden']['binary'] = Walden::Host::WALDEN_BIN

# A local .deb path in source wins over apt. Without source the package
# comes from apt; with uri set the repository is declared here too.
default['walden']['package']['name'] = Walden::Install::PACKAGE
default['walden']['package']['version'] = nil
default['walden']['package']['source'] = nil
default['walden']['apt']['uri'] = nil
default['walden']['apt']['distribution'] = nil
default['walden']['apt']['components'] = ['main']
default['walden']['apt']['key'] = nil
default['walden']['apt']['arch'] = nil

# Replaces ExecStart in a drop-in; by default only set when the envdir is
# not the one the packaged unit reads.
default['walden']['systemd']['exec_start'] = nil

# The WAL-E installation the migration takes over and the rollback restores.
default['walden']['migration']['install_path'] = Walden::Host::INSTALL_PATH
default['walden']['migration']['aside_path'] = Walden::Host::ASIDE_PATH
default['walden']['migration']['link_target'] = Walden::Host::LINK_TARGET
default['walden']['migration']['cron_name'] = Walden::Host::CRON_NAME
default['walden']['migration']['cron_command'] = Walden::Host::CRON_COMMAND
default['walden']['migration']['cron_user'] = nil # => the user above

# `walden check` before the cutover.
default['walden']['check']['timeout'] = Walden::Check::TIMEOUT
default['walden']['check']['extra_args'] = []

# Rolling back after walden wrote lz4/zstd/none leaves data WAL-E cannot
# read; the rollback refuses unless this says that is understood.
default['walden']['rollback']['accept_unrestorable'] = false
