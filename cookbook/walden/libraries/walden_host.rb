# frozen_string_literal: true

require 'open3'

module Walden
  # What is on the host now: WAL-E, walden, or something in between.
  module Host
    INSTALL_PATH = '/opt/wal-e'
    ASIDE_PATH = '/opt/wal-e.pre-walden'
    LINK_TARGET = '/usr/lib/walden/bin/wal-e'
    WALDEN_BIN = '/usr/bin/walden'
    CRON_NAME = 'full wal-e backup'
    CRON_COMMAND = '/opt/wal-e/bin/backup.sh'

    # install: the WAL-E virtualenv (archive_command runs install/bin/wal-e);
    # aside: where migration moves it; link_target: walden's wal-e entry point.
    Paths = Struct.new(:install, :aside, :link_target, :walden_bin, keyword_init: true) do
      def wal_e
        File.join(install, 'bin', 'wal-e')
      end
    end

    # wal_e_venv: install/bin/wal-e exists and is not walden's link.
    # compression: WALDEN_COMPRESSION as the envdir has it now (nil = unset).
    State = Struct.new(:walden_installed, :wal_e_venv, :wal_e_link, :install_exists, :aside, :cron_entry,
                       :compression, keyword_init: true) do
      # :fresh, :wal_e, :migrated, :partial (a cutover left half done, or
      # a cron entry back next to the link) or :conflict (the virtualenv
      # both in place and moved aside).
      def kind
        return aside ? :conflict : :wal_e if wal_e_venv
        return :fresh unless [install_exists, aside, cron_entry].any?

        wal_e_link && !cron_entry ? :migrated : :partial
      end

      # WAL-E would still archive or back up here.
      def wal_e_active?
        wal_e_venv || !cron_entry.nil?
      end

      # walden has been archive_command's target here, so its compression matters to WAL-E.
      def walden_ran?
        wal_e_link || aside
      end
    end

    module_function

    def link_in_place?(paths)
      File.symlink?(paths.wal_e) && File.readlink(paths.wal_e) == paths.link_target
    end

    def wal_e_venv?(paths)
      (File.exist?(paths.wal_e) || File.symlink?(paths.wal_e)) && !link_in_place?(paths)
    end

    # crontab: user => crontab text, injectable for the specs.
    def detect(paths, envdir:, cron_name:, cron_users:, crontab: method(:crontab))
      State.new(
        walden_installed: File.executable?(paths.walden_bin),
        wal_e_venv: wal_e_venv?(paths),
        wal_e_link: link_in_place?(paths),
        install_exists: File.exist?(paths.install) || File.symlink?(paths.install),
        aside: File.directory?(paths.aside),
        cron_entry: find_cron(cron_name, cron_users, crontab),
        compression: Envdir.read_value(envdir, 'WALDEN_COMPRESSION')
      )
    end

    def find_cron(name, users, crontab)
      users.each do |user|
        entry = Crontab.find(crontab.call(user), name, user)
        return entry if entry
      end
      nil
    end

    # The user's crontab, or '' when there is none (crontab exits non-zero).
    def crontab(user)
      out, _err, status = Open3.capture3('crontab', '-l', '-u', user)
      status.success? ? out : ''
    rescue SystemCallError
      ''
    end
  end
end
