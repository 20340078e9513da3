# frozen_string_literal: true

RSpec.describe Walden::Config do
  it 'gives legacy-style and walden-style roles the same envdir' do
    expect(config_for(SpecHelpers::LEGACY_ROLE).env).to eq(config_for(SpecHelpers::WALDEN_ROLE).env)
  end

  it 'maps every legacy variable name' do
    Walden::Legacy::VARIABLES.each do |key, var|
      expect(config_for('wal_e' => { key => 'v' }).env).to eq(var => 'v')
    end
  end

  it 'lets the first of two legacy names for one variable win' do
    cfg = config_for('wal_e' => { 'aws_access_key' => 'first', 'aws_access_key_id' => 'second' })
    expect(cfg.env).to eq('AWS_ACCESS_KEY_ID' => 'first')
  end

  it "lets node['walden'] win over legacy names and says so" do
    cfg = config_for('wal_e' => { 's3_prefix' => 's3://old' },
                     'walden' => { 'env' => { 'WALE_S3_PREFIX' => 's3://new' } })
    expect(cfg.env).to eq('WALE_S3_PREFIX' => 's3://new')
    expect(cfg.warnings)
      .to eq(["WALE_S3_PREFIX: node['walden']['env']['WALE_S3_PREFIX'] wins over node['wal_e']['s3_prefix']"])
  end

  it 'lets named legacy attributes win over the legacy env hash' do
    cfg = config_for('wal_e' => { 's3_prefix' => 's3://named', 'env' => { 'WALE_S3_PREFIX' => 's3://hash' } })
    expect(cfg.env).to eq('WALE_S3_PREFIX' => 's3://named')
  end

  it "orders the legacy namespaces node['wal_e'], node['wal-e'], node['postgresql']['wal_e']" do
    cfg = config_for('wal_e' => { 'gpg_key_id' => 'A' },
                     'wal-e' => { 'gpg_key_id' => 'B', 'file_prefix' => 'file://x' },
                     'postgresql' => { 'wal_e' => { 'gpg_key_id' => 'C', 's3_prefix' => 's3://c' } })
    expect(cfg.env).to eq('WALE_GPG_KEY_ID' => 'A', 'WALE_FILE_PREFIX' => 'file://x', 'WALE_S3_PREFIX' => 's3://c')
  end

  it 'skips legacy values left nil or empty, as the WAL-E cookbooks defaulted them' do
    expect(config_for('wal_e' => { 'aws_access_key' => '', 'aws_secret_key' => nil }).env).to eq({})
  end

  it "removes a variable set to false or nil in node['walden']['env'] even when a legacy attribute sets it" do
    role = { 'wal_e' => { 's3_prefix' => 's3://x', 'gpg_key_id' => 'K' },
             'walden' => { 'env' => { 'WALE_GPG_KEY_ID' => false, 'WALDEN_RETAIN' => nil } } }
    cfg = config_for(role)
    expect(cfg.env).to eq('WALE_S3_PREFIX' => 's3://x')
    expect(cfg.sources['WALE_GPG_KEY_ID']).to end_with('(removed)')
  end

  it 'turns numbers and true into strings' do
    cfg = config_for('walden' => { 'env' => { 'WALDEN_RETAIN' => 7, 'AWS_INSTANCE_PROFILE' => true } })
    expect(cfg.env).to eq('WALDEN_RETAIN' => '7', 'AWS_INSTANCE_PROFILE' => 'true')
  end

  it 'accepts symbol keys, as roles written in Ruby have them' do
    expect(config_for(wal_e: { s3_prefix: 's3://sym' }).env).to eq('WALE_S3_PREFIX' => 's3://sym')
  end

  describe 'settings that are not variables' do
    it 'defaults envdir, user and group' do
      cfg = config_for({})
      expect([cfg.envdir, cfg.user, cfg.group]).to eq(%w[/etc/wal-e.d/env postgres postgres])
    end

    it 'takes each legacy spelling of the envdir and drops a trailing slash' do
      %w[env_dir envdir env_path d_env_path].each do |key|
        expect(config_for('wal_e' => { key => '/etc/wal-e/' }).envdir).to eq('/etc/wal-e')
      end
    end

    it "takes user and group from legacy names, node['walden'] winning" do
      expect(config_for('wal-e' => { 'postgres_group' => 'pgg' }).group).to eq('pgg')
      cfg = config_for('wal_e' => { 'user' => 'u1', 'group' => 'g1' }, 'walden' => { 'user' => 'u2' })
      expect([cfg.user, cfg.group]).to eq(%w[u2 g1])
    end

    it 'refuses a relative envdir' do
      expect { config_for('walden' => { 'envdir' => 'etc/env' }) }.to raise_error(Walden::ConfigError, /absolute/)
    end

    it 'puts the manifest and the saved cron entry beside the envdir' do
      cfg = config_for({})
      expect([cfg.manifest_path, cfg.cron_save_path]).to eq(%w[/etc/wal-e.d/env.walden-managed
                                                               /etc/wal-e.d/env.wal-e-cron.json])
    end
  end

  describe 'verify and drill attributes' do
    it 'sets WALDEN_VERIFY_SCHEDULE, WALDEN_DRILL_SCHEDULE and WALDEN_DRILL_DIR' do
      cfg = config_for('walden' => { 'verify' => { 'schedule' => '0 4 * * 6' },
                                     'drill' => { 'schedule' => '0 5 * * 6', 'dir' => '/srv/drill' } })
      expect(cfg.env).to eq('WALDEN_VERIFY_SCHEDULE' => '0 4 * * 6', 'WALDEN_DRILL_SCHEDULE' => '0 5 * * 6',
                            'WALDEN_DRILL_DIR' => '/srv/drill')
    end

    it 'writes nothing when they are nil, and lets the env hash win' do
      expect(config_for('walden' => { 'verify' => { 'schedule' => nil } }).env).to eq({})
      cfg = config_for('walden' => { 'drill' => { 'schedule' => '0 5 * * 6' },
                                     'env' => { 'WALDEN_DRILL_SCHEDULE' => 'off' } })
      expect(cfg.env).to eq('WALDEN_DRILL_SCHEDULE' => 'off')
    end
  end

  describe 'base backup schedule' do
    it 'maps the cron fields to WALDEN_BACKUP_SCHEDULE' do
      expect(config_for(SpecHelpers::LEGACY_ROLE).schedule).to eq('30 2 * * 1')
    end

    it 'writes no schedule when neither naming sets one (walden defaults to 0 0 * * *)' do
      expect(config_for('wal_e' => { 's3_prefix' => 's3://x' }).schedule).to be_nil
    end

    it 'refuses base_backup.disabled unless a schedule is set explicitly' do
      expect { config_for('wal_e' => { 'base_backup' => { 'disabled' => true } }) }
        .to raise_error(Walden::ConfigError, /disabled/)
      role = { 'wal_e' => { 'base_backup' => { 'disabled' => true } },
               'walden' => { 'env' => { 'WALDEN_BACKUP_SCHEDULE' => '0 3 * * 0' } } }
      expect(config_for(role).schedule).to eq('0 3 * * 0')
    end

    it 'warns that base_backup.options is dropped' do
      cfg = config_for('wal_e' => { 'base_backup' => { 'hour' => '1', 'options' => '--pool-size 4' } })
      expect(cfg.warnings).to include(/options.*ignored/)
    end

    it 'warns when the host is not on UTC, since cron fields were local time' do
      cfg = config_for(SpecHelpers::LEGACY_ROLE, utc_offset: 7200)
      expect(cfg.warnings).to include(/local time \(UTC\+2\)/)
    end
  end

  describe 'compression' do
    it 'defaults to lzo only when asked' do
      expect(config_for({}, lzo_default: true).env).to eq('WALDEN_COMPRESSION' => 'lzo')
      expect(config_for({}).env).to eq({})
    end

    it 'lets an explicit attribute override the migration default without a warning' do
      cfg = config_for({ 'walden' => { 'env' => { 'WALDEN_COMPRESSION' => 'lz4' } } }, lzo_default: true)
      expect(cfg.env).to eq('WALDEN_COMPRESSION' => 'lz4')
      expect(cfg.warnings).to be_empty
    end
  end

  describe 'validation' do
    {
      { 'WALDEN_COMPRESSION' => 'gzip' } => /WALDEN_COMPRESSION/,
      { 'WALDEN_RETAIN' => 'two weeks' } => /WALDEN_RETAIN/,
      { 'WALDEN_RETAIN' => '0' } => /WALDEN_RETAIN/,
      { 'WALDEN_BACKUP_SCHEDULE' => '0 0 * *' } => /five fields/,
      { 'WALDEN_BACKUP_SCHEDULE' => '61 0 * * *' } => /out of range/,
      { '../etc/passwd' => 'x' } => /not a variable name/,
      { 'WALE_S3_PREFIX' => "s3://a\ns3://b" } => /line break/,
      { 'WALE_S3_PREFIX' => 's3://a ' } => /blanks/,
      { 'WALE_S3_PREFIX' => %w[a b] } => /Array/
    }.each do |env, message|
      it "refuses #{env.inspect}" do
        expect { config_for('walden' => { 'env' => env }) }.to raise_error(Walden::ConfigError, message)
      end
    end

    it 'accepts counts and ages for WALDEN_RETAIN' do
      expect(config_for('walden' => { 'env' => { 'WALDEN_RETAIN' => '14d' } }).env['WALDEN_RETAIN']).to eq('14d')
    end
  end
end
