# frozen_string_literal: true

# Runs the agent and proves, from inside its sandbox, that it can work.
# The envdir and drop-in notify service[walden] :restart, delayed; a run
# that starts the agent has it read the new configuration already, so
# that restart is skipped then (a first install starts it once).
ctx = node.run_state.fetch(Walden::Context::RUN_STATE_KEY)
started = "#{Walden::Context::RUN_STATE_KEY}_started"

service 'walden' do
  action :enable
  # Guarded so no restart notification can start the agent before the cutover.
  only_if { ctx.agent_allowed? }
  not_if { node.run_state[started] }
end

service 'walden start' do
  service_name 'walden'
  action :start
  only_if { ctx.agent_allowed? }
  notifies :run, 'ruby_block[walden started by this run]', :immediately
end

ruby_block 'walden started by this run' do
  block { node.run_state[started] = true }
  action :nothing
end

# Queued now, so it runs after every restart queued before it: the check
# then sees the agent with this converge's configuration.
ruby_block 'walden check after the converge' do
  block { Chef::Log.debug('walden: the service check runs at the end of the run') }
  only_if { ctx.agent_allowed? }
  notifies :run, 'ruby_block[walden check from inside the service]', :delayed
end

ruby_block 'walden check from inside the service' do
  block { Walden::Check.service_run!(ctx.check_args) }
  action :nothing
end
