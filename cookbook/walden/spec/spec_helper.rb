# frozen_string_literal: true

require 'erb'
require 'fileutils'
require 'tmpdir'

COOKBOOK = File.expand_path('..', __dir__)

# Chef loads libraries/ in file-name order before attributes; so do the specs.
Dir[File.join(COOKBOOK, 'libraries', '*.rb')].sort.each { |f| require f }

# Helpers shared by the specs: attribute fixtures, template rendering and
# host layouts in a temporary directory.
module SpecHelpers
  # A role written for the WAL-E cookbooks.
  LEGACY_ROLE = {
    'wal_e' => {
      'env_dir' => '/etc/wal-e.d/env',
      'aws_access_key' => 'AKIAEXAMPLE',
      'aws_secret_key' => 'secret/key+example',
      's3_prefix' => 's3://backups/db1',
      'gpg_key_id' => 'DEADBEEF',
      'base_backup' => { 'minute' => '30', 'hour' => '2', 'day' => '*', 'month' => '*', 'weekday' => '1' },
      'user' => 'postgres',
      'group' => 'postgres',
      'env' => { 'AWS_REGION' => 'eu-west-1' }
    }
  }.freeze

  # The same host described with walden's own attribute names.
  WALDEN_ROLE = {
    'walden' => {
      'env' => {
        'AWS_ACCESS_KEY_ID' => 'AKIAEXAMPLE',
        'AWS_SECRET_ACCESS_KEY' => 'secret/key+example',
        'AWS_REGION' => 'eu-west-1',
        'WALE_S3_PREFIX' => 's3://backups/db1',
        'WALE_GPG_KEY_ID' => 'DEADBEEF',
        'WALDEN_BACKUP_SCHEDULE' => '30 2 * * 1'
      }
    }
  }.freeze

  def render(template, vars)
    scope = Object.new
    vars.each { |k, v| scope.instance_variable_set("@#{k}", v) }
    text = File.read(File.join(COOKBOOK, 'templates', 'default', template))
    # Chef renders templates with '-' trimming.
    ERB.new(text, trim_mode: '-').result(scope.instance_eval { binding })
  end

  # attributes/default.rb evaluated into a plain Hash, as the node's
  # default level would hold it.
  def default_attributes
    loader = Object.new
    tree = Hash.new { |h, k| h[k] = Hash.new(&h.default_proc) }
    loader.define_singleton_method(:default) { tree }
    loader.instance_eval(File.read(File.join(COOKBOOK, 'attributes', 'default.rb')))
    Walden::Util.stringify(tree)
  end

  # A node: the attribute defaults deep-merged with a role.
  def node_with(role)
    deep_merge(default_attributes, Walden::Util.stringify(role))
  end

  def deep_merge(base, over)
    base.merge(over) { |_k, a, b| a.is_a?(Hash) && b.is_a?(Hash) ? deep_merge(a, b) : b }
  end

  # A role given without braces arrives in rest (Ruby treats it as keywords).
  def config_for(role = nil, lzo_default: false, utc_offset: 0, **rest)
    role = Walden::Util.stringify(role || rest)
    legacy = Walden::Legacy::NAMESPACES.map { |path| ["node['#{path.join("']['")}']", role.dig(*path)] }
    Walden::Config.build(walden: role['walden'], legacy: legacy, lzo_default: lzo_default, utc_offset: utc_offset)
  end

  def state(**over)
    base = { walden_installed: false, wal_e_venv: false, wal_e_link: false, install_exists: false, aside: false,
             cron_entry: nil, compression: nil }
    Walden::Host::State.new(**base, **over)
  end

  def cron_entry(user: 'postgres')
    Walden::Crontab::Entry.new(name: 'full wal-e backup', user: user, minute: '0', hour: '0', day: '*', month: '*',
                               weekday: '*', command: '/opt/wal-e/bin/backup.sh', environment: {})
  end

  # A WAL-E virtualenv: bin/wal-e is a script, as pip leaves it.
  def make_venv(dir)
    FileUtils.mkdir_p(File.join(dir, 'bin'))
    File.write(File.join(dir, 'bin', 'wal-e'), "#!/opt/wal-e/bin/python\n")
    File.write(File.join(dir, 'bin', 'backup.sh'), "#!/bin/sh\n")
    File.chmod(0o755, File.join(dir, 'bin', 'wal-e'))
  end
end

RSpec.configure do |c|
  c.include SpecHelpers
  c.disable_monkey_patching!
  c.order = :random
end
