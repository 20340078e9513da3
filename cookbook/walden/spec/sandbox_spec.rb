# frozen_string_literal: true

# ProtectSystem=strict leaves the agent only the unit's ReadWritePaths; the
# drop-in must add every path a setting makes it write.
RSpec.describe Walden::Systemd do
  def paths(env)
    described_class.dropin(config_for('walden' => { 'env' => env }), walden_bin: '/usr/bin/walden')
                   &.fetch('read_write_paths')
  end

  it 'adds the root of a file store, which the agent writes backups and WAL under' do
    expect(paths('WALE_FILE_PREFIX' => 'file://localhost/var/lib/walden-store')).to eq(['-/var/lib/walden-store'])
    expect(paths('WALE_FILE_PREFIX' => 'file:///srv/backups//db1/')).to eq(['-/srv/backups/db1'])
  end

  it 'adds the drill and lock directories and the log file and socket directories' do
    env = { 'WALDEN_DRILL_DIR' => '/srv/drill/', 'WALDEN_LOCK_DIR' => '/srv/lock',
            'WALDEN_LOG_FILE' => '/srv/log/walden.log', 'WALDEN_SOCKET' => '/run/pg-walden/agent.sock' }
    expect(paths(env)).to eq(%w[-/srv/drill -/srv/lock -/srv/log -/run/pg-walden])
  end

  it 'finds a file store given by a legacy attribute' do
    cfg = config_for('wal_e' => { 'file_prefix' => 'file://localhost/backup/pg' })
    expect(described_class.dropin(cfg, walden_bin: '/usr/bin/walden')['read_write_paths']).to eq(['-/backup/pg'])
  end

  it 'needs nothing for a cloud store or one under the unit\'s own paths' do
    expect(paths('WALE_S3_PREFIX' => 's3://b/p')).to be_nil
    expect(paths('WALE_FILE_PREFIX' => 'file://localhost/var/lib/postgresql/store')).to be_nil
  end

  it 'refuses relative paths, which ReadWritePaths cannot take' do
    expect do
      paths('WALDEN_DRILL_DIR' => 'drill')
    end.to raise_error(Walden::ConfigError, /WALDEN_DRILL_DIR: "drill" must be an absolute path/)
  end

  it 'refuses a file prefix that names no absolute directory' do
    expect { paths('WALE_FILE_PREFIX' => 'file://localhost') }.to raise_error(Walden::ConfigError, /WALE_FILE_PREFIX/)
  end
end

RSpec.describe Walden::Store do
  it 'gives the file store root to the service user, mode 0750' do
    cfg = config_for('walden' => { 'user' => 'pg', 'group' => 'pgadm',
                                   'env' => { 'WALE_FILE_PREFIX' => 'file://localhost/srv/walden-store' } })
    expect(described_class.directory(cfg)).to eq('path' => '/srv/walden-store', 'owner' => 'pg', 'group' => 'pgadm',
                                                 'mode' => '0750')
  end

  it 'also makes the drill and lock directories, which the agent could not create in its sandbox' do
    cfg = config_for('walden' => { 'env' => { 'WALDEN_DRILL_DIR' => '/srv/drill/', 'WALDEN_LOCK_DIR' => '/srv/lock',
                                              'WALE_S3_PREFIX' => 's3://b/p' } })
    expect(described_class.directories(cfg).map { |d| [d['path'], d['owner'], d['mode']] })
      .to eq([%w[/srv/drill postgres 0750], %w[/srv/lock postgres 0750]])
  end

  it 'creates nothing for other stores' do
    expect(described_class.directory(config_for('walden' => { 'env' => { 'WALE_GS_PREFIX' => 'gs://b/p' } }))).to be_nil
  end
end

RSpec.describe 'Walden::Check.service_run!' do
  let(:cfg) { config_for('walden' => { 'envdir' => '/etc/wal-e.d/env', 'user' => 'postgres' }) }
  let(:args) { { config: cfg, walden_bin: '/usr/bin/walden', timeout: 60 } }

  def status(success)
    instance_double(Process::Status, success?: success)
  end

  it 'asks the running agent about the envdir in place, as the service user' do
    seen = nil
    runner = lambda do |*argv|
      seen = argv
      ["ok   service store: wrote\n", '', status(true)]
    end
    expect(Walden::Check.service_run!(args, runner: runner).ok).to be(true)
    as_user = Process.uid.zero? ? %w[runuser -u postgres --] : []
    expect(seen).to eq(['timeout', '60', *as_user, '/usr/bin/walden', '--envdir', '/etc/wal-e.d/env', 'check',
                        '--require-agent', '--no-postgres'])
  end

  it 'fails the converge with the agent\'s problems' do
    problem = 'walden check: service store: cannot write to the store file://localhost/srv/s: /srv/s is read-only ' \
              "inside the service's sandbox (ProtectSystem=strict): add it to ReadWritePaths"
    runner = ->(*_argv) { ["FAIL ...\n", "#{problem}\n", status(false)] }
    expect { Walden::Check.service_run!(args, runner: runner) }
      .to raise_error(Walden::CheckFailed, /walden.service cannot do its work:\n  #{Regexp.escape(problem)}\z/)
  end
end
