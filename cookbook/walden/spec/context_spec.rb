# frozen_string_literal: true

RSpec.describe Walden::Context do
  around do |ex|
    Dir.mktmpdir do |d|
      @root = d
      ex.run
    end
  end

  let(:envdir) { "#{@root}/etc/wal-e.d/env" }
  let(:crontabs) { {} }
  let(:role) do
    { 'walden' => { 'migration' => { 'install_path' => "#{@root}/opt/wal-e",
                                     'aside_path' => "#{@root}/opt/wal-e.pre-walden",
                                     'link_target' => "#{@root}/usr/lib/walden/bin/wal-e" },
                    'binary' => "#{@root}/usr/bin/walden" },
      'wal_e' => { 'env_dir' => envdir, 's3_prefix' => 's3://b/p', 'aws_secret_key' => 'k' } }
  end

  def context(recipe, extra = {})
    crontab = ->(user) { crontabs.fetch(user, '') }
    described_class.new(node_with(deep_merge(role, extra)), recipe, crontab: crontab, utc_offset: 0)
  end

  it 'plans a migration of a WAL-E host found on disk' do
    make_venv("#{@root}/opt/wal-e")
    crontabs['postgres'] = "# Chef Name: full wal-e backup\n0 0 * * 1 /opt/wal-e/bin/backup.sh\n"
    ctx = context(:migrate)
    expect(ctx.state.kind).to eq(:wal_e)
    expect(ctx.steps).to eq(%i[install_package check write_envdir save_cron remove_cron move_venv_aside link_wal_e
                               start_agent])
    expect(ctx.config.env).to eq('WALE_S3_PREFIX' => 's3://b/p', 'AWS_SECRET_ACCESS_KEY' => 'k',
                                 'WALDEN_COMPRESSION' => 'lzo')
    expect(ctx.check_args).to include(walden_bin: "#{@root}/usr/bin/walden", timeout: 300, extra_args: [])
  end

  it 'removes only the variables its manifest lists' do
    FileUtils.mkdir_p(envdir)
    File.write("#{envdir}.walden-managed", Walden::Envdir.manifest_content(%w[WALE_S3_PREFIX WALDEN_RETAIN AWS_REGION]))
    expect(context(:default).removals).to eq(%w[AWS_REGION WALDEN_RETAIN])
  end

  it 'keeps lzo under the default recipe while the virtualenv is kept aside' do
    FileUtils.mkdir_p("#{@root}/opt/wal-e.pre-walden")
    expect(context(:default).config.env['WALDEN_COMPRESSION']).to eq('lzo')
  end

  it 'restores the saved cron entry on rollback' do
    make_venv("#{@root}/opt/wal-e.pre-walden")
    FileUtils.mkdir_p(envdir)
    File.write("#{envdir}/WALDEN_COMPRESSION", "lzo\n")
    saved = Walden::Crontab.find("# Chef Name: full wal-e backup\nMAILTO=dba\n15 3 * * 0 /opt/wal-e/bin/backup.sh\n",
                                 'full wal-e backup', 'postgres')
    File.write("#{envdir}.wal-e-cron.json", Walden::Crontab.dump(saved))
    ctx = context(:rollback)
    expect(ctx.steps).to eq(%i[restore_venv restore_cron])
    expect(ctx.rollback_cron).to eq('command' => '/opt/wal-e/bin/backup.sh', 'user' => 'postgres', 'minute' => '15',
                                    'hour' => '3', 'day' => '*', 'month' => '*', 'weekday' => '0', 'mailto' => 'dba')
  end

  it 'builds the cron entry from legacy attributes when nothing was saved' do
    make_venv("#{@root}/opt/wal-e")
    ctx = context(:rollback, 'wal_e' => { 'base_backup' => { 'hour' => '4', 'weekday' => 'sun' }, 'user' => 'pg' })
    expect(ctx.rollback_cron).to eq('command' => '/opt/wal-e/bin/backup.sh', 'user' => 'pg', 'minute' => '0',
                                    'hour' => '4', 'day' => '*', 'month' => '*', 'weekday' => '0')
  end

  it 'reports a fresh host under the migration recipe' do
    expect(context(:migrate).warnings).to include(/no WAL-E found/)
  end

  it 'refuses two of its recipes in one run list' do
    run_state = {}
    described_class.claim!(run_state, context(:migrate))
    described_class.claim!(run_state, context(:migrate))
    expect { described_class.claim!(run_state, context(:default)) }
      .to raise_error(Walden::ConfigError, /migrate_from_wal_e and walden::default/)
  end

  it 'reads a node whose legacy namespaces are absent or not hashes' do
    node = node_with(role).merge('postgresql' => 'not a hash')
    expect { described_class.new(node, :default, crontab: ->(_u) { '' }) }.not_to raise_error
  end
end
