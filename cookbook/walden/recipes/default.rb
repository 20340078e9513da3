# frozen_string_literal: true

# Installs walden, writes its envdir from the attributes and runs the agent.
# Refuses a host where WAL-E is still set up: that is migrate_from_wal_e's job.
ctx = Walden::Context.new(node, :default)
Walden::Context.claim!(node.run_state, ctx)
ctx.warnings.each { |w| Chef::Log.warn("walden: #{w}") }

include_recipe 'walden::_install'
include_recipe 'walden::_envdir'
include_recipe 'walden::_agent'
