# frozen_string_literal: true

RSpec.describe Walden::Host do
  let(:wal_e_cron) { "# Chef Name: full wal-e backup\n0 0 * * * /opt/wal-e/bin/backup.sh\n" }
  around do |ex|
    Dir.mktmpdir do |d|
      @root = d
      ex.run
    end
  end

  let(:paths) do
    Walden::Host::Paths.new(install: "#{@root}/opt/wal-e", aside: "#{@root}/opt/wal-e.pre-walden",
                            link_target: "#{@root}/usr/lib/walden/bin/wal-e", walden_bin: "#{@root}/usr/bin/walden")
  end
  let(:envdir) { "#{@root}/etc/wal-e.d/env" }
  let(:crontabs) { {} }

  def detect
    described_class.detect(paths, envdir: envdir, cron_name: 'full wal-e backup', cron_users: %w[postgres root],
                                  crontab: ->(user) { crontabs.fetch(user, '') })
  end

  # What the recipes' resources do for each step, done directly on the
  # temporary tree: enough to see the plans converge and reverse. Steps with
  # no effect on the tree (check, save_cron, start/stop_agent) do nothing.
  def apply(steps)
    steps.each { |step| send("do_#{step}") if respond_to?("do_#{step}", true) }
  end

  def do_install_package
    bin = paths.walden_bin
    FileUtils.mkdir_p([File.dirname(bin), File.dirname(paths.link_target)])
    File.write(bin, "#!/bin/sh\n")
    File.chmod(0o755, bin)
    FileUtils.ln_sf(bin, paths.link_target)
  end

  def do_write_envdir
    File.write(File.join(envdir, 'WALDEN_COMPRESSION'), "lzo\n")
  end

  def do_remove_cron
    crontabs.delete('postgres')
  end

  def do_restore_cron
    crontabs['postgres'] = wal_e_cron
  end

  def do_move_venv_aside
    Walden::Files.move!(paths.install, paths.aside)
  end

  def do_link_wal_e
    FileUtils.mkdir_p(File.dirname(paths.wal_e))
    File.symlink(paths.link_target, paths.wal_e) unless File.symlink?(paths.wal_e)
  end

  def do_remove_link
    Walden::Files.remove_link_dir!(paths.install, paths.link_target)
  end

  def do_restore_venv
    Walden::Files.move!(paths.aside, paths.install)
  end

  def wal_e_host
    make_venv(paths.install)
    do_restore_cron
    FileUtils.mkdir_p(envdir)
    File.write(File.join(envdir, 'WALE_S3_PREFIX'), "s3://b/p\n")
  end

  it 'sees a fresh host' do
    s = detect
    expect([s.kind, s.walden_installed, s.cron_entry, s.compression]).to eq([:fresh, false, nil, nil])
  end

  it 'sees a WAL-E host, its cron entry and its user' do
    wal_e_host
    s = detect
    expect([s.kind, s.wal_e_venv, s.cron_entry.user, s.cron_entry.command])
      .to eq([:wal_e, true, 'postgres', '/opt/wal-e/bin/backup.sh'])
  end

  it 'finds the cron entry in root\'s crontab too' do
    crontabs['root'] = wal_e_cron
    expect(detect.cron_entry.user).to eq('root')
  end

  it 'treats a wal-e link to something other than walden as WAL-E' do
    FileUtils.mkdir_p(File.dirname(paths.wal_e))
    File.symlink('/usr/local/bin/wal-e', paths.wal_e)
    expect(detect.kind).to eq(:wal_e)
  end

  it 'migrates a WAL-E host, then converges again without changes, then rolls back to the same virtualenv' do
    wal_e_host
    venv_before = File.read(File.join(paths.install, 'bin', 'wal-e'))

    apply(Walden::Plan.steps(:migrate, detect))
    migrated = detect
    expect(migrated.kind).to eq(:migrated)
    expect([migrated.wal_e_link, migrated.aside, migrated.compression]).to eq([true, true, 'lzo'])
    expect(File.readlink(paths.wal_e)).to eq(paths.link_target)
    expect(File.read(File.join(paths.aside, 'bin', 'wal-e'))).to eq(venv_before)

    again = Walden::Plan.steps(:migrate, migrated)
    expect(again & %i[check save_cron remove_cron move_venv_aside]).to be_empty

    apply(Walden::Plan.steps(:rollback, migrated))
    back = detect
    expect(back.kind).to eq(:wal_e)
    expect(File.read(File.join(paths.install, 'bin', 'wal-e'))).to eq(venv_before)
    expect(File.exist?(paths.aside)).to be(false)
    expect(back.cron_entry).not_to be_nil
    expect(Walden::Plan.steps(:rollback, back)).to eq(%i[stop_agent restore_cron])
  end

  describe Walden::Files do
    it 'will not move onto an existing path' do
      make_venv(paths.install)
      FileUtils.mkdir_p(paths.aside)
      expect { described_class.move!(paths.install, paths.aside) }.to raise_error(Walden::ConfigError, /already exists/)
      expect { described_class.move!("#{@root}/nothing", "#{@root}/x") }
        .to raise_error(Walden::ConfigError, /does not exist/)
    end

    it 'removes only a directory that holds nothing but the walden link' do
      FileUtils.mkdir_p(File.dirname(paths.wal_e))
      File.symlink(paths.link_target, paths.wal_e)
      File.write(File.join(paths.install, 'notes.txt'), 'mine')
      expect { described_class.remove_link_dir!(paths.install, paths.link_target) }
        .to raise_error(Walden::ConfigError, /notes.txt/)
      File.unlink(File.join(paths.install, 'notes.txt'))
      described_class.remove_link_dir!(paths.install, paths.link_target)
      expect(File.exist?(paths.install)).to be(false)
    end

    it 'refuses to remove a real wal-e' do
      make_venv(paths.install)
      expect { described_class.remove_link_dir!(paths.install, paths.link_target) }
        .to raise_error(Walden::ConfigError, /not the walden link/)
    end
  end
end
