# frozen_string_literal: true

# The envdir (one file per variable, root:group 0640), the manifest of the
# variables this cookbook wrote, and the walden.service drop-in. Changes
# restart the agent at the end of the run; the including recipe declares
# service[walden].
ctx = node.run_state.fetch(Walden::Context::RUN_STATE_KEY)
cfg = ctx.config

directory cfg.envdir do
  owner Walden::Envdir::OWNER
  group cfg.group
  mode Walden::Envdir::DIR_MODE
  recursive true
end

cfg.entries.each do |entry|
  template ::File.join(cfg.envdir, entry.name) do
    source 'env_var.erb'
    owner Walden::Envdir::OWNER
    group cfg.group
    mode entry.mode
    sensitive entry.sensitive
    variables(value: entry.value)
    notifies :restart, 'service[walden]', :delayed
  end
end

ctx.removals.each do |name|
  file ::File.join(cfg.envdir, name) do
    action :delete
    notifies :restart, 'service[walden]', :delayed
  end
end

# A file store's root (walden creates only the directories below it) and
# the agent's drill and lock directories; the drop-in below lets the
# sandboxed agent write in them.
ctx.agent_directories.each do |dir|
  directory dir['path'] do
    owner dir['owner']
    group dir['group']
    mode dir['mode']
    recursive true
  end
end

file cfg.manifest_path do
  content Walden::Envdir.manifest_content(cfg.env.keys)
  owner Walden::Envdir::OWNER
  group cfg.group
  mode Walden::Envdir::FILE_MODE
end

execute 'walden systemd daemon-reload' do
  command 'systemctl daemon-reload'
  action :nothing
end

if ctx.dropin
  directory Walden::Systemd::DROPIN_DIR do
    owner 'root'
    group 'root'
    mode '0755'
  end

  template Walden::Systemd::DROPIN do
    source 'walden-dropin.conf.erb'
    owner 'root'
    group 'root'
    mode '0644'
    variables(ctx.dropin.transform_keys(&:to_sym))
    notifies :run, 'execute[walden systemd daemon-reload]', :immediately
    notifies :restart, 'service[walden]', :delayed
  end
else
  file Walden::Systemd::DROPIN do
    action :delete
    notifies :run, 'execute[walden systemd daemon-reload]', :immediately
    notifies :restart, 'service[walden]', :delayed
  end
end
