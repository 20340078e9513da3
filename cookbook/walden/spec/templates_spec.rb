# frozen_string_literal: true

RSpec.describe 'templates' do
  let(:expected) do
    {
      'AWS_ACCESS_KEY_ID' => ["AKIAEXAMPLE\n", '0640', true],
      'AWS_REGION' => ["eu-west-1\n", '0640', false],
      'AWS_SECRET_ACCESS_KEY' => ["secret/key+example\n", '0640', true],
      'WALDEN_BACKUP_SCHEDULE' => ["30 2 * * 1\n", '0640', false],
      'WALE_GPG_KEY_ID' => ["DEADBEEF\n", '0640', false],
      'WALE_S3_PREFIX' => ["s3://backups/db1\n", '0640', false]
    }
  end

  { 'walden-style' => SpecHelpers::WALDEN_ROLE, 'legacy-style' => SpecHelpers::LEGACY_ROLE }.each do |style, role|
    context "env_var.erb from #{style} attributes" do
      let(:entries) { config_for(role).entries }

      it 'gives one [name, content, mode, sensitive] entry per variable' do
        expect(entries.map(&:to_a)).to eq(expected.map { |name, rest| [name, *rest] })
      end

      it 'renders each file as the value and a newline' do
        entries.each do |e|
          expect(render('env_var.erb', value: e.value)).to eq(e.content)
          expect(e.content).to eq("#{e.value}\n")
        end
      end

      it 'writes the files root:postgres in /etc/wal-e.d/env' do
        cfg = config_for(role)
        expect([cfg.envdir, Walden::Envdir::OWNER, cfg.group]).to eq(%w[/etc/wal-e.d/env root postgres])
      end
    end
  end

  it 'renders values with characters ERB or the shell care about unchanged' do
    value = %q(s3://b/p?x=<%= 1 %>&y='"$HOME)
    expect(render('env_var.erb', value: value)).to eq("#{value}\n")
  end

  it 'adds WALDEN_COMPRESSION=lzo while migrating' do
    e = config_for(SpecHelpers::LEGACY_ROLE, lzo_default: true).entries.find { |x| x.name == 'WALDEN_COMPRESSION' }
    expect(e.to_a).to eq(['WALDEN_COMPRESSION', "lzo\n", '0640', false])
    expect(render('env_var.erb', value: e.value)).to eq("lzo\n")
  end

  describe 'walden-dropin.conf.erb' do
    def dropin_for(role, exec_start: nil)
      Walden::Systemd.dropin(config_for(role), walden_bin: '/usr/bin/walden', exec_start: exec_start)
    end

    def rendered(vars)
      render('walden-dropin.conf.erb', vars.transform_keys(&:to_sym))
    end

    it 'is not needed for the layout the package assumes' do
      expect(dropin_for(SpecHelpers::WALDEN_ROLE)).to be_nil
      expect(dropin_for(SpecHelpers::LEGACY_ROLE)).to be_nil
    end

    it 'points the agent at a legacy envdir and runs it as the legacy user and group' do
      role = { 'wal_e' => { 'env_dir' => '/etc/wal-e/', 'user' => 'pg', 'group' => 'pgadmin',
                            'pgdata_dir' => '/srv/pg/main' } }
      expect(rendered(dropin_for(role))).to eq(<<~UNIT)
        # Written by Chef (cookbook walden); local changes are overwritten.
        [Service]
        User=pg
        Group=pgadmin
        ExecStart=
        ExecStart=/usr/bin/walden --envdir /etc/wal-e agent
        ReadWritePaths=-/srv/pg/main
      UNIT
    end

    it 'lists the log and socket directories and takes an ExecStart from the attributes' do
      role = { 'walden' => { 'env' => { 'WALDEN_LOG_FILE' => '/srv/log/walden.log',
                                        'WALDEN_SOCKET' => '/run/pg-walden/agent.sock' } } }
      expect(rendered(dropin_for(role, exec_start: '/usr/local/bin/walden agent'))).to eq(<<~UNIT)
        # Written by Chef (cookbook walden); local changes are overwritten.
        [Service]
        ExecStart=
        ExecStart=/usr/local/bin/walden agent
        ReadWritePaths=-/srv/log
        ReadWritePaths=-/run/pg-walden
      UNIT
    end

    it 'leaves out paths the packaged unit already makes writable' do
      role = { 'walden' => { 'env' => { 'PGDATA' => '/var/lib/postgresql/15/main',
                                        'WALDEN_LOG_FILE' => '/var/log/walden/walden.log' } } }
      expect(dropin_for(role)).to be_nil
    end

    it 'refuses paths with blanks, which systemd would split' do
      role = { 'walden' => { 'env' => { 'PGDATA' => '/srv/my data' } } }
      expect { dropin_for(role) }.to raise_error(Walden::ConfigError, /blanks/)
    end
  end

  describe 'README mapping table' do
    let(:rows) do
      readme = File.read(File.join(COOKBOOK, 'README.md'))
      section = readme[/^## Attribute mapping\n(.*?)(?=^## )/m, 1]
      table = section.lines.select { |l| l.start_with?('|') }.drop(2)
      table.map { |l| l.split('|').map(&:strip)[1, 2].map { |c| c.delete('`') } }
    end

    it 'lists every mapping the library implements, and nothing else' do
      expect(rows).to match_array(Walden::Legacy.mapping_rows)
    end

    it 'names each legacy namespace the library reads' do
      readme = File.read(File.join(COOKBOOK, 'README.md'))
      Walden::Legacy::NAMESPACES.each do |path|
        expect(readme).to include("node#{path.map { |p| "['#{p}']" }.join}")
      end
    end
  end
end
