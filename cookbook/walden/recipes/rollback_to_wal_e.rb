# frozen_string_literal: true

# Reverses migrate_from_wal_e: stops and disables the agent, removes the
# wal-e link, moves the WAL-E virtualenv back and restores the backup cron
# entry. The envdir and the walden package stay (see README).
ctx = Walden::Context.new(node, :rollback)
Walden::Context.claim!(node.run_state, ctx)
ctx.warnings.each { |w| Chef::Log.warn("walden: #{w}") }
paths = ctx.paths
Chef::Log.info("walden: host is #{ctx.state.kind}; rollback steps: #{ctx.steps.join(', ')}")

ctx.steps.each do |step|
  case step
  when :stop_agent
    service 'walden' do
      action %i[stop disable]
    end
  when :remove_link
    ruby_block "remove the walden link directory #{paths.install}" do
      block { Walden::Files.remove_link_dir!(paths.install, paths.link_target) }
      only_if { ::File.directory?(paths.aside) && ::File.exist?(paths.install) }
    end
  when :restore_venv
    ruby_block "move #{paths.aside} back to #{paths.install}" do
      block { Walden::Files.move!(paths.aside, paths.install) }
      only_if { ::File.directory?(paths.aside) }
    end
  when :restore_cron
    props = ctx.rollback_cron
    cron ctx.cron_name do
      props.each { |property, value| send(property, property == 'time' ? value.to_sym : value) }
    end
  else
    raise Walden::ConfigError, "no resources for rollback step #{step}"
  end
end
