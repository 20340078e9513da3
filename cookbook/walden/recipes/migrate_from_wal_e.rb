# frozen_string_literal: true

# Converges a WAL-E host to walden without touching postgresql.conf: the
# archive_command keeps calling <install_path>/bin/wal-e, which becomes a
# link to walden. Walden::Plan decides the steps from the host's state;
# each step below only declares its resources.
ctx = Walden::Context.new(node, :migrate)
Walden::Context.claim!(node.run_state, ctx)
ctx.warnings.each { |w| Chef::Log.warn("walden: #{w}") }
paths = ctx.paths
Chef::Log.info("walden: host is #{ctx.state.kind}; migration steps: #{ctx.steps.join(', ')}")

ctx.steps.each do |step|
  case step
  when :install_package
    include_recipe 'walden::_install'
  when :check
    # Raising here ends the converge before any later step runs.
    ruby_block 'walden check' do
      block { Walden::Check.run!(ctx.check_args) }
    end
  when :write_envdir
    include_recipe 'walden::_envdir'
  when :save_cron
    # Kept so the rollback can put back exactly the entry removed here.
    file ctx.config.cron_save_path do
      content Walden::Crontab.dump(ctx.state.cron_entry)
      owner 'root'
      group ctx.config.group
      mode Walden::Envdir::FILE_MODE
      sensitive true
    end
  when :remove_cron
    cron ctx.cron_name do
      user ctx.state.cron_entry.user
      action :delete
    end
  when :move_venv_aside
    ruby_block "move #{paths.install} to #{paths.aside}" do
      block { Walden::Files.move!(paths.install, paths.aside) }
      only_if { Walden::Host.wal_e_venv?(paths) }
    end
  when :link_wal_e
    directory ::File.dirname(paths.wal_e) do
      owner 'root'
      group 'root'
      mode '0755'
      recursive true
    end
    link paths.wal_e do
      to paths.link_target
    end
  when :start_agent
    include_recipe 'walden::_agent'
  else
    raise Walden::ConfigError, "no resources for migration step #{step}"
  end
end
