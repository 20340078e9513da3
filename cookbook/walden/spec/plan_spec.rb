# frozen_string_literal: true

RSpec.describe Walden::Plan do
  def migrate(**flags)
    described_class.steps(:migrate, state(**flags))
  end

  def rollback(accept: false, **flags)
    described_class.steps(:rollback, state(**flags), accept_unrestorable: accept)
  end

  describe 'host states' do
    it 'tells the kinds apart' do
      expect(state.kind).to eq(:fresh)
      expect(state(wal_e_venv: true, install_exists: true, cron_entry: cron_entry).kind).to eq(:wal_e)
      expect(state(wal_e_link: true, install_exists: true, aside: true).kind).to eq(:migrated)
      expect(state(wal_e_link: true, install_exists: true).kind).to eq(:migrated)
      expect(state(aside: true).kind).to eq(:partial)
      expect(state(wal_e_link: true, install_exists: true, aside: true, cron_entry: cron_entry).kind).to eq(:partial)
      expect(state(wal_e_venv: true, install_exists: true, aside: true).kind).to eq(:conflict)
    end
  end

  describe 'default recipe' do
    it 'installs, configures and starts on a fresh or migrated host' do
      expect(described_class.steps(:default, state)).to eq(%i[install_package write_envdir start_agent])
      expect(described_class.steps(:default, state(wal_e_link: true, install_exists: true, aside: true)))
        .to eq(%i[install_package write_envdir start_agent])
    end

    it 'refuses a host where WAL-E still runs' do
      expect { described_class.steps(:default, state(wal_e_venv: true, install_exists: true)) }
        .to raise_error(Walden::ConfigError, /migrate_from_wal_e/)
      expect { described_class.steps(:default, state(cron_entry: cron_entry)) }
        .to raise_error(Walden::ConfigError, /cron entry 'full wal-e backup'/)
    end
  end

  describe 'migrate_from_wal_e' do
    it 'on a WAL-E host without walden: install (for the binary), check, then the cutover in order' do
      expect(migrate(wal_e_venv: true, install_exists: true, cron_entry: cron_entry))
        .to eq(%i[install_package check write_envdir save_cron remove_cron move_venv_aside link_wal_e start_agent])
    end

    it 'on a WAL-E host with walden installed: check before anything else' do
      expect(migrate(walden_installed: true, wal_e_venv: true, install_exists: true, cron_entry: cron_entry))
        .to eq(%i[check install_package write_envdir save_cron remove_cron move_venv_aside link_wal_e start_agent])
    end

    it 'on a WAL-E host whose cron entry is already gone' do
      expect(migrate(walden_installed: true, wal_e_venv: true, install_exists: true))
        .to eq(%i[check install_package write_envdir move_venv_aside link_wal_e start_agent])
    end

    it 'on an already migrated host: no check, no cutover, only ensures' do
      expect(migrate(walden_installed: true, wal_e_link: true, install_exists: true, aside: true))
        .to eq(%i[install_package write_envdir link_wal_e start_agent])
    end

    it 'on a fresh host: walden and the wal-e link, nothing to check against' do
      expect(migrate).to eq(%i[install_package write_envdir link_wal_e start_agent])
    end

    it 'finishes a cutover interrupted between the move and the link, without a check' do
      expect(migrate(walden_installed: true, aside: true))
        .to eq(%i[install_package write_envdir link_wal_e start_agent])
    end

    it 'removes a cron entry that came back (checking first, since WAL-E would run again)' do
      expect(migrate(walden_installed: true, wal_e_link: true, install_exists: true, aside: true,
                     cron_entry: cron_entry))
        .to eq(%i[check install_package write_envdir save_cron remove_cron link_wal_e start_agent])
    end

    it 'refuses when the virtualenv is both in place and moved aside' do
      expect { migrate(wal_e_venv: true, install_exists: true, aside: true) }
        .to raise_error(Walden::ConfigError, /by hand/)
    end

    it 'always checks before the first step that changes WAL-E' do
      plans = [migrate(wal_e_venv: true, install_exists: true, cron_entry: cron_entry),
               migrate(walden_installed: true, wal_e_venv: true, install_exists: true)]
      plans.each do |steps|
        first_change = steps.index { |s| %i[write_envdir remove_cron move_venv_aside link_wal_e].include?(s) }
        expect(steps.index(:check)).to be < first_change
        expect(steps.last).to eq(:start_agent)
      end
    end
  end

  describe 'rollback_to_wal_e' do
    let(:migrated) do
      { walden_installed: true, wal_e_link: true, install_exists: true, aside: true, compression: 'lzo' }
    end
    let(:reversal) { %i[stop_agent remove_link restore_venv restore_cron] }

    it 'reverses each migration step on a migrated host' do
      expect(rollback(**migrated)).to eq(reversal)
    end

    it 'is a no-op apart from ensures on a host already rolled back' do
      expect(rollback(walden_installed: true, wal_e_venv: true, install_exists: true, compression: 'lzo'))
        .to eq(%i[stop_agent restore_cron])
    end

    it 'finishes a rollback interrupted after the link was removed' do
      expect(rollback(walden_installed: true, aside: true, compression: 'lzo'))
        .to eq(%i[stop_agent restore_venv restore_cron])
    end

    it 'refuses when there is no WAL-E to go back to' do
      expect { rollback(walden_installed: true, wal_e_link: true, install_exists: true) }
        .to raise_error(Walden::ConfigError, /no WAL-E virtualenv/)
    end

    it 'refuses after walden wrote data WAL-E cannot read, unless told it is understood' do
      %w[lz4 zstd none].each do |c|
        expect { rollback(**migrated, compression: c) }
          .to raise_error(Walden::ConfigError, /#{c}.*accept_unrestorable/m)
      end
      expect { rollback(**migrated, compression: nil) }.to raise_error(Walden::ConfigError, /lz4/)
      expect(rollback(accept: true, **migrated, compression: 'lz4')).to eq(reversal)
    end

    it 'does not care about compression on a host walden never served' do
      expect(rollback(wal_e_venv: true, install_exists: true)).to eq(%i[restore_cron])
    end
  end

  describe 'compression default' do
    it 'is lzo when migrating and while the virtualenv is kept aside' do
      expect(described_class.lzo_default?(:migrate, state)).to be(true)
      expect(described_class.lzo_default?(:default, state(aside: true))).to be(true)
      expect(described_class.lzo_default?(:default, state)).to be(false)
    end
  end
end
